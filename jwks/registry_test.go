package jwks_test

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
)

func newRegistry(t testing.TB, issuers []string, o jwks.RegistryOptions) *jwks.Registry {
	t.Helper()
	r, err := jwks.NewRegistry(issuers, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// An Auth0 custom domain and its tenant domain publish one key set: given the
// same URL, they share one Remote and the issuer sees one fetch.
func TestRegistrySharedURL(t *testing.T) {
	iss := startIssuer(t, jwkstest.Options{Algorithm: "ES256"})
	const custom, tenant = "https://login.northwind.com/", "https://northwind.auth0.com/"
	var (
		mu     sync.Mutex
		served [][]string
	)
	r := newRegistry(t, []string{custom, tenant}, jwks.RegistryOptions{
		JWKSURLs: map[string]string{custom: iss.JWKSURL(), tenant: iss.JWKSURL()},
		Remote:   jwks.RemoteOptions{RefreshInterval: longInterval},
		OnRefresh: func(issuers []string, e jwks.RefreshEvent) {
			mu.Lock()
			defer mu.Unlock()
			served = append(served, issuers)
		},
	})
	a, okA := r.Set(custom)
	b, okB := r.Set(tenant)
	if !okA || !okB || a != b {
		t.Fatalf("Set(custom) = %v, Set(tenant) = %v: want one shared set", a, b)
	}
	mustKey(t, a, iss.SigningKey().ID)
	if n := iss.JWKSRequests(); n != 1 {
		t.Errorf("%d JWKS requests for two issuers sharing a URL, want 1", n)
	}
	if !r.Ready() {
		t.Error("Ready() = false after the shared set loaded")
	}
	if got := r.Issuers(); !slices.Equal(got, []string{custom, tenant}) {
		t.Errorf("Issuers() = %q", got)
	}
	st := r.Status()
	if len(st) != 2 || st[0].Issuer != custom || st[1].Issuer != tenant || !st[0].Loaded || !st[1].Loaded {
		t.Errorf("Status() = %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(served) == 0 || !slices.Equal(served[0], []string{custom, tenant}) {
		t.Errorf("OnRefresh issuers = %q, want both", served)
	}
	if _, ok := r.Set("https://other.example.com/"); ok {
		t.Error("Set() of an untrusted issuer succeeded")
	}
}

// Issuers with their own key sets get their own sets: a key of one is not
// found in the other's.
func TestRegistrySeparateSets(t *testing.T) {
	a := startIssuer(t, jwkstest.Options{Algorithm: "ES256"})
	b := startIssuer(t, jwkstest.Options{Algorithm: "ES256"})
	r := newRegistry(t, []string{a.URL(), b.URL()}, jwks.RegistryOptions{Remote: jwks.RemoteOptions{RefreshInterval: longInterval}})
	setA, _ := r.Set(a.URL())
	setB, _ := r.Set(b.URL())
	mustKey(t, setA, a.SigningKey().ID)
	mustKey(t, setB, b.SigningKey().ID)
	if _, err := setA.Key(testContext(t), b.SigningKey().ID); !errors.Is(err, jwks.ErrKeyNotFound) {
		t.Errorf("issuer B's key found in A's set: %v", err)
	}
	if a.DiscoveryRequests() != 1 || b.DiscoveryRequests() != 1 {
		t.Errorf("discovery requests %d and %d, want 1 each", a.DiscoveryRequests(), b.DiscoveryRequests())
	}
}

func TestRegistryFileURL(t *testing.T) {
	es := newKey(t, "ES256")
	path := writeFile(t, "jwks.json", jwksJSON(t, publicJWK(t, es)))
	const issuer = "https://login.northwind.com/"
	for _, u := range []string{"file://" + path, "file://localhost" + path} {
		r := newRegistry(t, []string{issuer}, jwks.RegistryOptions{JWKSURLs: map[string]string{issuer: u}})
		set, _ := r.Set(issuer)
		if _, ok := set.(*jwks.Static); !ok {
			t.Errorf("%s: set is %T, want *jwks.Static", u, set)
		}
		mustKey(t, set, es.ID)
		if !r.Ready() {
			t.Errorf("%s: not ready", u)
		}
	}
	for _, tt := range []struct{ url, wantErr string }{
		{"file://" + path + ".missing", "no such file"},
		{"file://keys.example.com" + path, "must be file:///path"},
		{"file://" + writeFile(t, "empty.json", []byte(`{"keys":[]}`)), "no usable signature key"},
	} {
		r, err := jwks.NewRegistry([]string{issuer}, jwks.RegistryOptions{JWKSURLs: map[string]string{issuer: tt.url}})
		if err == nil {
			r.Close()
			t.Errorf("%s: NewRegistry succeeded", tt.url)
		} else if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), issuer) {
			t.Errorf("%s: error %q, want %q and the issuer", tt.url, err, tt.wantErr)
		}
	}
}

// Every configuration problem is reported at once.
func TestRegistryBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		issuers []string
		urls    map[string]string
		want    []string
	}{
		{name: "no issuers", want: []string{"jwks: no issuers"}},
		{
			name:    "everything wrong",
			issuers: []string{"http://login.example.com/", "ftp://127.0.0.1/", "https://ok.example.com/", "https://user@x.example.com/"},
			urls: map[string]string{
				"https://untrusted.example.com/": "https://keys.example.com/jwks.json",
				"https://ok.example.com/":        "http://keys.example.com/jwks.json",
			},
			want: []string{
				`"http://login.example.com/" must use https`,
				`"ftp://127.0.0.1/" must be an https URL`,
				`"https://REDACTED@x.example.com/" must not have user info`,
				`key set URL given for "https://untrusted.example.com/", which is not a trusted issuer`,
				`key set URL of https://ok.example.com/: jwks: "http://keys.example.com/jwks.json" must use https`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := jwks.NewRegistry(tt.issuers, jwks.RegistryOptions{JWKSURLs: tt.urls})
			if err == nil {
				r.Close()
				t.Fatal("NewRegistry succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if got := len(strings.Split(err.Error(), "\n")); got != len(tt.want) {
				t.Errorf("%d problems reported, want %d:\n%v", got, len(tt.want), err)
			}
		})
	}
}

func TestRegistryReady(t *testing.T) {
	up := startIssuer(t, jwkstest.Options{Algorithm: "ES256"})
	down := startIssuer(t, jwkstest.Options{Algorithm: "ES256"})
	down.SetDown(true)
	var (
		mu      sync.Mutex
		changed = make(chan struct{}, 1)
		events  []jwks.RefreshEvent
	)
	r := newRegistry(t, []string{up.URL(), down.URL()}, jwks.RegistryOptions{
		JWKSURLs: map[string]string{down.URL(): down.JWKSURL()},
		Remote:   jwks.RemoteOptions{RefreshInterval: 50 * time.Millisecond, MinRefreshInterval: 20 * time.Millisecond},
		OnRefresh: func(_ []string, e jwks.RefreshEvent) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
			select {
			case changed <- struct{}{}:
			default:
			}
		},
	})
	setUp, _ := r.Set(up.URL())
	mustKey(t, setUp, up.SigningKey().ID)
	if err := down.WaitJWKSRequests(testContext(t), 1); err != nil {
		t.Fatal(err)
	}
	if r.Ready() {
		t.Error("Ready() = true while an issuer has never been reachable")
	}
	st := r.Status()
	if len(st) != 2 || st[0].Issuer != up.URL() || !st[0].Loaded || st[1].Issuer != down.URL() || st[1].Loaded {
		t.Errorf("Status() = %+v", st)
	}

	down.SetDown(false)
	deadline := time.After(waitLimit)
	for !r.Ready() {
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("not Ready %v after the issuer came back: %+v", waitLimit, r.Status())
		}
	}
	if st := r.Status(); st[1].LastError != "" || st[1].Keys != 1 {
		t.Errorf("Status() after recovery = %+v", st[1])
	}
}
