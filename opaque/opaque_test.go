package opaque_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenward/tokenward/internal/syncbuf"
	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/opaque"
	"github.com/tokenward/tokenward/scopes"
)

const (
	audience     = "https://api.example.com"
	clientID     = "tokenward"
	clientSecret = "s3cret-ThAt-Must-N0t-Leak"
)

// guard bounds how long a test waits for what should happen at once. It
// never paces a test.
const guard = 10 * time.Second

// newIssuer starts a test issuer that answers introspection for our client.
func newIssuer(t testing.TB) *jwkstest.Issuer {
	t.Helper()
	iss := jwkstest.NewIssuerWithOptions(jwkstest.Options{Algorithm: "ES256"})
	t.Cleanup(iss.Close)
	iss.SetIntrospectionClient(clientID, clientSecret)
	return iss
}

func newIntrospector(t testing.TB, iss *jwkstest.Issuer, opts opaque.IntrospectorOptions) *opaque.Introspector {
	t.Helper()
	if opts.ClientID == "" {
		opts.ClientID = clientID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = clientSecret
	}
	if opts.Issuer == "" {
		opts.Issuer = iss.URL()
	}
	in, err := opaque.NewIntrospector(iss.IntrospectionURL(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// noKeys is a key set without keys: these tests send no JWTs.
type noKeys struct{}

func (noKeys) Key(context.Context, string) (jwks.Key, error) { return jwks.Key{}, jwks.ErrKeyNotFound }

func newValidator(t testing.TB, trusted string, checker middleware.OpaqueChecker, opts middleware.ValidatorOptions) *middleware.Validator {
	t.Helper()
	opts.Opaque = checker
	v, err := middleware.NewValidator([]middleware.Issuer{{URL: trusted, Keys: noKeys{}}}, []string{audience}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// newAPI serves, behind the middleware, GET /contacts needing no scope and
// GET /admin needing "admin". Both answer the subject and the email.
func newAPI(t testing.TB, v *middleware.Validator) *httptest.Server {
	t.Helper()
	mw, err := middleware.New(v, middleware.Options{})
	if err != nil {
		t.Fatal(err)
	}
	who := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := middleware.ClaimsFrom(r.Context())
		var profile struct {
			Email string `json:"email"`
		}
		c.Decode(&profile)
		fmt.Fprintf(w, "%s %s", c.Subject, profile.Email)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /contacts", who)
	mux.Handle("GET /admin", middleware.Require(scopes.All("admin"), who))
	api := httptest.NewServer(mw(mux))
	t.Cleanup(api.Close)
	return api
}

type answer struct {
	status     int
	body       string
	errCode    string // "error" of a refusal
	desc       string // "error_description" of a refusal
	retryAfter string
	challenge  string
}

func call(t testing.TB, url, token string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, body: string(body), retryAfter: resp.Header.Get("Retry-After"), challenge: resp.Header.Get("WWW-Authenticate")}
	var refusal struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if resp.StatusCode != http.StatusOK && json.Unmarshal(body, &refusal) == nil {
		a.errCode, a.desc = refusal.Error, refusal.Description
	}
	return a
}

func TestIntrospectionThroughMiddleware(t *testing.T) {
	iss := newIssuer(t)
	in := newIntrospector(t, iss, opaque.IntrospectorOptions{})
	mint := func(extra map[string]any) string { return iss.MintOpaque(iss.Claims(audience, extra)) }
	revoked := mint(nil)
	iss.RevokeOpaque(revoked)

	for _, tc := range []struct {
		name    string
		token   string
		path    string
		trusted string        // the validator's trusted issuer; "" means iss
		skew    time.Duration // the validator's clock ahead of the issuer's
		status  int
		errCode string
		desc    string
	}{
		{name: "valid", token: mint(map[string]any{"scope": "read:contacts", "email": "ada@example.com"}), status: 200},
		{name: "valid with the route's scope", token: mint(map[string]any{"scope": "admin"}), path: "/admin", status: 200},
		{name: "missing scope", token: mint(map[string]any{"scope": "read:contacts"}), path: "/admin", status: 403, errCode: "insufficient_scope"},
		{name: "inactive (revoked at the issuer)", token: revoked, status: 401, errCode: "invalid_token", desc: "token not active"},
		{name: "unknown to the issuer", token: "bm90LWEtdG9rZW4tdGhlLWlzc3Vlci1rbm93cw", status: 401, errCode: "invalid_token", desc: "token not active"},
		{name: "expired (the issuer says inactive)", token: mint(map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}), status: 401, desc: "token not active"},
		{name: "expired by our clock", token: mint(nil), skew: 2 * time.Hour, status: 401, errCode: "invalid_token", desc: "token expired"},
		{name: "wrong audience", token: iss.MintOpaque(iss.Claims("https://other.example.com", nil)), status: 401, errCode: "invalid_token", desc: "audience not accepted"},
		{name: "no audience", token: mint(map[string]any{"aud": nil}), status: 401, desc: "audience not accepted"},
		{name: "answer names another issuer", token: mint(map[string]any{"iss": "https://evil.example.com/"}), status: 401, errCode: "invalid_token", desc: "issuer not trusted"},
		{name: "introspector's issuer not trusted", token: mint(nil), trusted: "https://other-tenant.example.com/", status: 401, desc: "issuer not trusted"},
		{name: "refresh token", token: mint(map[string]any{"token_type": "refresh_token"}), status: 401, desc: "token not active"},
		{name: "DPoP-bound token as Bearer", token: mint(map[string]any{"cnf": map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}), status: 401, errCode: "invalid_token", desc: "DPoP-bound token presented as a bearer token"},
		{name: "certificate-bound token without a certificate", token: mint(map[string]any{"cnf": map[string]any{"x5t#S256": strings.Repeat("A", 43)}}), status: 401, errCode: "invalid_token", desc: "token is bound to a client certificate and none was presented"},
		{name: "malformed cnf", token: mint(map[string]any{"cnf": "x"}), status: 503},
		{name: "not yet valid", token: mint(map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}), status: 401, desc: "token not yet valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trusted := tc.trusted
			if trusted == "" {
				trusted = iss.URL()
			}
			skew := tc.skew
			v := newValidator(t, trusted, in, middleware.ValidatorOptions{Now: func() time.Time { return time.Now().Add(skew) }})
			api := newAPI(t, v)
			path := tc.path
			if path == "" {
				path = "/contacts"
			}
			a := call(t, api.URL+path, tc.token)
			if a.status != tc.status {
				t.Fatalf("status %d (%s), want %d", a.status, a.body, tc.status)
			}
			if tc.errCode != "" && a.errCode != tc.errCode {
				t.Errorf("error %q, want %q", a.errCode, tc.errCode)
			}
			if tc.desc != "" && a.desc != tc.desc {
				t.Errorf("error_description %q, want %q", a.desc, tc.desc)
			}
			if a.status == http.StatusOK && !strings.HasPrefix(a.body, "auth0|test-user") {
				t.Errorf("body %q, want the subject", a.body)
			}
		})
	}
}

// TestIntrospectionCertificateBound: an introspection answer with
// cnf.x5t#S256 is cached like any other, and its certificate is checked on
// every request, hits included.
func TestIntrospectionCertificateBound(t *testing.T) {
	iss := newIssuer(t)
	in := newIntrospector(t, iss, opaque.IntrospectorOptions{})
	g, err := middleware.NewGuard(newValidator(t, iss.URL(), in, middleware.ValidatorOptions{}), middleware.GuardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	certs := make([]*x509.Certificate, 2)
	for i := range certs {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 1)), Subject: pkix.Name{CommonName: "client"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		certs[i], _ = x509.ParseCertificate(der)
	}
	sum := sha256.Sum256(certs[0].Raw)
	token := iss.MintOpaque(iss.Claims(audience, map[string]any{"cnf": map[string]any{"x5t#S256": base64.RawURLEncoding.EncodeToString(sum[:])}}))
	for i, tc := range []struct {
		cert *x509.Certificate
		want *middleware.Error
	}{{certs[0], nil}, {certs[1], middleware.ErrCertificateMismatch}, {nil, middleware.ErrNoCertificate}, {certs[0], nil}} {
		_, e := g.Check(context.Background(), middleware.Request{Header: http.Header{"Authorization": {"Bearer " + token}},
			Peer: middleware.Peer{Addr: "198.51.100.1:1", Certificate: tc.cert}}, scopes.Requirement{})
		if tc.want == nil && e != nil || tc.want != nil && !errors.Is(e, tc.want) {
			t.Errorf("request %d: %v, want %v", i, e, tc.want)
		}
	}
	if s := in.Stats(); s.Calls != 1 || s.Hits != 3 {
		t.Errorf("stats %+v, want one call and three hits", s)
	}
}

func TestIntrospectionClaims(t *testing.T) {
	iss := newIssuer(t)
	in := newIntrospector(t, iss, opaque.IntrospectorOptions{})
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	token := iss.MintOpaque(iss.Claims(audience, map[string]any{"scope": "read:contacts write:contacts", "client_id": "app-1", "exp": exp.Unix()}))
	c, err := in.CheckOpaque(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != middleware.KindIntrospection || c.Issuer != iss.URL() || c.Subject != "auth0|test-user" ||
		c.ClientID != "app-1" || !c.ExpiresAt.Equal(exp) || len(c.Audience) != 1 || c.Audience[0] != audience ||
		c.Scopes.String() != "read:contacts write:contacts" {
		t.Errorf("claims %+v", c)
	}
	// A hit returns a copy: changing it does not change the next answer.
	c.Subject = "changed"
	c2, err := in.CheckOpaque(context.Background(), token)
	if err != nil || c2.Subject != "auth0|test-user" {
		t.Errorf("second check: %+v %v", c2, err)
	}
}

func TestBadClientAuthentication(t *testing.T) {
	iss := newIssuer(t)
	iss.SetIntrospectionClient(clientID, "the-issuer-expects-another-secret")
	var logs syncbuf.Buffer
	in := newIntrospector(t, iss, opaque.IntrospectorOptions{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	api := newAPI(t, newValidator(t, iss.URL(), in, middleware.ValidatorOptions{}))
	token := iss.MintOpaque(iss.Claims(audience, nil))

	a := call(t, api.URL+"/contacts", token)
	if a.status != http.StatusServiceUnavailable || a.retryAfter == "" {
		t.Errorf("answer %d Retry-After %q, want 503 with Retry-After", a.status, a.retryAfter)
	}
	if a.errCode != "temporarily_unavailable" || a.desc != "issuer unavailable" {
		t.Errorf("refusal %q %q", a.errCode, a.desc)
	}
	if iss.IntrospectionRequests() != 1 {
		t.Errorf("%d introspection requests, want 1", iss.IntrospectionRequests())
	}
	log := logs.String()
	if !strings.Contains(log, "refused our client credentials") || !strings.Contains(log, `"client_id":"tokenward"`) {
		t.Errorf("log does not explain the failure:\n%s", log)
	}
	if strings.Contains(log, clientSecret) || strings.Contains(log, token) {
		t.Errorf("log leaks the secret or the token:\n%s", log)
	}
	// The failure is not cached: the next request asks again.
	call(t, api.URL+"/contacts", token)
	if iss.IntrospectionRequests() != 2 {
		t.Errorf("%d introspection requests after a second request, want 2", iss.IntrospectionRequests())
	}
	if st := in.Stats(); st.Errors != 2 || st.Calls != 2 || st.Hits != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestSecretRedacted(t *testing.T) {
	opts := opaque.IntrospectorOptions{ClientID: clientID, ClientSecret: clientSecret, Issuer: "https://issuer.example.com/"}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	logger.Info("config", "secret", opts.ClientSecret, "id", opts.ClientID)
	in, err := opaque.NewIntrospector("https://issuer.example.com/oauth/introspect", opts)
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("checker", "introspector", in)
	printed := fmt.Sprintf("%v %+v %#v %s", in, in, in, in)
	j, err := json.Marshal(struct{ Secret opaque.Secret }{opts.ClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		fmt.Sprint(opts.ClientSecret), fmt.Sprintf("%v", opts), fmt.Sprintf("%+v", opts), fmt.Sprintf("%#v", opts),
		fmt.Sprintf("%s %q %x", opts.ClientSecret, opts.ClientSecret, opts.ClientSecret), string(j), logs.String(),
	} {
		if strings.Contains(s, clientSecret) || !strings.Contains(s, "REDACTED") && !strings.Contains(s, "5245444") {
			t.Errorf("secret not redacted in %q", s)
		}
	}
	if strings.Contains(printed, clientSecret) || !strings.Contains(printed, clientID) {
		t.Errorf("introspector printed as %q", printed)
	}
}

func TestUserInfoThroughMiddleware(t *testing.T) {
	iss := newIssuer(t)
	ui, err := opaque.NewUserInfo(iss.UserInfoURL(), opaque.UserInfoOptions{Issuer: iss.URL()})
	if err != nil {
		t.Fatal(err)
	}
	api := newAPI(t, newValidator(t, iss.URL(), ui, middleware.ValidatorOptions{}))
	// Auth0 mints such a token without an API audience; the issuer's claims
	// say aud and scope, which /userinfo does not repeat and we must not
	// believe.
	valid := iss.MintOpaque(iss.Claims(iss.URL()+"userinfo", map[string]any{"email": "ada@example.com", "scope": "openid email admin"}))
	revoked := iss.MintOpaque(iss.Claims(audience, nil))
	iss.RevokeOpaque(revoked)

	for _, tc := range []struct {
		name, token, path string
		status            int
		body, errCode     string
	}{
		{"valid", valid, "/contacts", 200, "auth0|test-user ada@example.com", ""},
		{"route requiring scopes", valid, "/admin", 403, "", "insufficient_scope"},
		{"refused by userinfo (revoked)", revoked, "/contacts", 401, "", "invalid_token"},
		{"unknown to userinfo", "bm90LWEtdG9rZW4tdGhlLWlzc3Vlci1rbm93cw", "/contacts", 401, "", "invalid_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, api.URL+tc.path, tc.token)
			if a.status != tc.status {
				t.Fatalf("status %d (%s), want %d", a.status, a.body, tc.status)
			}
			if tc.body != "" && a.body != tc.body {
				t.Errorf("body %q, want %q", a.body, tc.body)
			}
			if a.errCode != tc.errCode {
				t.Errorf("error %q, want %q", a.errCode, tc.errCode)
			}
		})
	}

	c, err := ui.CheckOpaque(context.Background(), valid)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != middleware.KindUserInfo || c.Issuer != iss.URL() || c.Subject != "auth0|test-user" ||
		len(c.Audience) != 0 || c.Scopes.Len() != 0 || !c.ExpiresAt.IsZero() || !c.IssuedAt.IsZero() {
		t.Errorf("claims %+v", c)
	}
}

func TestUserInfoForcesIssuer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"sub":"auth0|1","iss":"https://evil.example.com/","aud":"https://api.example.com","scope":"admin","permissions":["admin"],"exp":1}`)
	}))
	defer srv.Close()
	ui, err := opaque.NewUserInfo(srv.URL+"/userinfo", opaque.UserInfoOptions{Issuer: "https://tenant.example.com/"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ui.CheckOpaque(context.Background(), "opaque-token")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := c.Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if c.Issuer != "https://tenant.example.com/" || raw["iss"] != c.Issuer || len(c.Audience) != 0 || c.Scopes.Len() != 0 || !c.ExpiresAt.IsZero() {
		t.Errorf("claims %+v from %v", c, raw)
	}
}

func TestCacheHitAvoidsTheCall(t *testing.T) {
	iss := newIssuer(t)
	var results sync.Map // "result cached" -> *atomic.Int64
	in := newIntrospector(t, iss, opaque.IntrospectorOptions{OnCheck: func(result string, cached bool) {
		n, _ := results.LoadOrStore(fmt.Sprint(result, " ", cached), new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}})
	api := newAPI(t, newValidator(t, iss.URL(), in, middleware.ValidatorOptions{}))
	token := iss.MintOpaque(iss.Claims(audience, nil))
	unknown := "bm90LWEtdG9rZW4tdGhlLWlzc3Vlci1rbm93cw"
	for range 3 {
		if a := call(t, api.URL+"/contacts", token); a.status != 200 {
			t.Fatalf("status %d", a.status)
		}
		if a := call(t, api.URL+"/contacts", unknown); a.status != 401 {
			t.Fatalf("unknown token: status %d", a.status)
		}
	}
	if n := iss.IntrospectionRequests(); n != 2 {
		t.Errorf("%d introspection requests for 2 tokens, 3 times each: want 2", n)
	}
	if st := in.Stats(); st.Calls != 2 || st.Hits != 4 || st.Misses != 2 || st.Errors != 0 || st.Entries != 2 {
		t.Errorf("stats %+v", st)
	}
	for key, want := range map[string]int64{"active false": 1, "active true": 2, "inactive false": 1, "inactive true": 2} {
		n, _ := results.Load(key)
		if got := n.(*atomic.Int64).Load(); got != want {
			t.Errorf("OnCheck(%s) called %d times, want %d", key, got, want)
		}
	}
}

func TestConcurrentChecksMakeOneCall(t *testing.T) {
	iss := newIssuer(t)
	// One call at a time: the checks that join the call in progress need
	// no slot of their own, so none is refused as busy.
	in := newIntrospector(t, iss, opaque.IntrospectorOptions{MaxConcurrency: 1})
	api := newAPI(t, newValidator(t, iss.URL(), in, middleware.ValidatorOptions{}))
	token := iss.MintOpaque(iss.Claims(audience, nil))

	// The issuer holds its answer until every request is waiting for it,
	// so that they all overlap the one call.
	iss.SetDelay(time.Hour)
	const n = 100
	statuses := make(chan int, n)
	for range n {
		go func() {
			req, err := http.NewRequest(http.MethodGet, api.URL+"/contacts", nil)
			if err != nil {
				statuses <- 0
				return
			}
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := iss.WaitIntrospectionRequests(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// Every request has missed the cache, so each waits on the call (or
	// made it). Nothing signals that, so poll the counter, yielding.
	for in.Stats().Misses < n {
		if ctx.Err() != nil {
			t.Fatalf("only %d of %d requests reached the checker", in.Stats().Misses, n)
		}
		runtime.Gosched()
	}
	iss.SetDelay(0)
	for range n {
		select {
		case s := <-statuses:
			if s != http.StatusOK {
				t.Errorf("status %d", s)
			}
		case <-ctx.Done():
			t.Fatal("requests still unanswered")
		}
	}
	if got := iss.IntrospectionRequests(); got != 1 {
		t.Errorf("%d introspection calls for %d concurrent requests with one token, want 1", got, n)
	}
}

func TestSlowIssuer(t *testing.T) {
	iss := newIssuer(t)
	const timeout = 200 * time.Millisecond
	in := newIntrospector(t, iss, opaque.IntrospectorOptions{Timeout: timeout})
	ui, err := opaque.NewUserInfo(iss.UserInfoURL(), opaque.UserInfoOptions{Issuer: iss.URL(), Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	iss.SetDelay(time.Hour)
	for _, checker := range []middleware.OpaqueChecker{in, ui} {
		api := newAPI(t, newValidator(t, iss.URL(), checker, middleware.ValidatorOptions{}))
		start := time.Now()
		a := call(t, api.URL+"/contacts", iss.MintOpaque(iss.Claims(audience, nil)))
		elapsed := time.Since(start)
		if a.status != http.StatusServiceUnavailable || a.retryAfter == "" {
			t.Errorf("%T: answer %d Retry-After %q, want 503 with Retry-After", checker, a.status, a.retryAfter)
		}
		// A bound, not a performance measurement: the request must not hang
		// on the issuer.
		if elapsed > timeout+time.Second {
			t.Errorf("%T: answered after %v with a timeout of %v", checker, elapsed, timeout)
		}
	}
}

func TestIssuerMisbehaves(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(*jwkstest.Issuer)
	}{
		{"garbage", func(iss *jwkstest.Issuer) { iss.SetGarbage(true) }},
		{"down", func(iss *jwkstest.Issuer) { iss.SetDown(true) }},
		{"closed", func(iss *jwkstest.Issuer) { iss.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss := newIssuer(t)
			in := newIntrospector(t, iss, opaque.IntrospectorOptions{})
			ui, err := opaque.NewUserInfo(iss.UserInfoURL(), opaque.UserInfoOptions{Issuer: iss.URL()})
			if err != nil {
				t.Fatal(err)
			}
			token := iss.MintOpaque(iss.Claims(audience, nil))
			tc.breakIt(iss)
			for _, checker := range []middleware.OpaqueChecker{in, ui} {
				api := newAPI(t, newValidator(t, iss.URL(), checker, middleware.ValidatorOptions{}))
				if a := call(t, api.URL+"/contacts", token); a.status != http.StatusServiceUnavailable {
					t.Errorf("%T: status %d (%s), want 503", checker, a.status, a.body)
				}
				_, err := checker.CheckOpaque(context.Background(), token)
				if !errors.Is(err, middleware.ErrIssuerUnavailable) {
					t.Errorf("%T: %v, want issuer_unavailable", checker, err)
				}
			}
		})
	}
}

func TestGarbageIsNotCached(t *testing.T) {
	iss := newIssuer(t)
	in := newIntrospector(t, iss, opaque.IntrospectorOptions{})
	token := iss.MintOpaque(iss.Claims(audience, nil))
	iss.SetGarbage(true)
	if _, err := in.CheckOpaque(context.Background(), token); !errors.Is(err, middleware.ErrIssuerUnavailable) {
		t.Fatalf("garbage: %v", err)
	}
	iss.SetGarbage(false)
	if _, err := in.CheckOpaque(context.Background(), token); err != nil {
		t.Fatalf("after the issuer recovered: %v", err)
	}
	if n := iss.IntrospectionRequests(); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}
}

// clock is a settable clock for the cache.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestCacheExpiry(t *testing.T) {
	iss := newIssuer(t)
	clk := newClock()
	in := newIntrospector(t, iss, opaque.IntrospectorOptions{Now: clk.Now, CacheTTL: time.Minute, NegativeTTL: 10 * time.Second})
	ctx := context.Background()
	check := func(token string) error { _, err := in.CheckOpaque(ctx, token); return err }
	calls := func() int64 { return iss.IntrospectionRequests() }

	t.Run("negative", func(t *testing.T) {
		unknown := "bmVnYXRpdmUtY2FjaGluZy10b2tlbg"
		base := calls()
		for range 2 {
			if err := check(unknown); !errors.Is(err, middleware.ErrInactive) {
				t.Fatalf("unknown token: %v", err)
			}
		}
		if calls()-base != 1 {
			t.Fatalf("%d calls within the negative TTL, want 1", calls()-base)
		}
		clk.Advance(10 * time.Second)
		if err := check(unknown); !errors.Is(err, middleware.ErrInactive) {
			t.Fatalf("unknown token: %v", err)
		}
		if calls()-base != 2 {
			t.Errorf("%d calls after the negative TTL, want 2", calls()-base)
		}
	})
	t.Run("positive until CacheTTL", func(t *testing.T) {
		token := iss.MintOpaque(iss.Claims(audience, nil)) // exp in an hour
		base := calls()
		if err := check(token); err != nil {
			t.Fatal(err)
		}
		iss.RevokeOpaque(token)
		clk.Advance(59 * time.Second)
		if err := check(token); err != nil {
			t.Errorf("within CacheTTL: %v (the cached answer stands)", err)
		}
		clk.Advance(time.Second)
		if err := check(token); !errors.Is(err, middleware.ErrInactive) {
			t.Errorf("after CacheTTL, revoked at the issuer: %v, want inactive", err)
		}
		if calls()-base != 2 {
			t.Errorf("%d calls, want 2", calls()-base)
		}
	})
	t.Run("positive until exp", func(t *testing.T) {
		token := iss.MintOpaque(iss.Claims(audience, map[string]any{"exp": clk.Now().Add(20 * time.Second).Unix()}))
		base := calls()
		if err := check(token); err != nil {
			t.Fatal(err)
		}
		clk.Advance(21 * time.Second)
		check(token)
		if calls()-base != 2 {
			t.Errorf("%d calls, want 2: the answer is cached no longer than exp", calls()-base)
		}
	})
}

func TestMaxEntries(t *testing.T) {
	iss := newIssuer(t)
	in := newIntrospector(t, iss, opaque.IntrospectorOptions{MaxEntries: 3})
	for range 10 {
		if _, err := in.CheckOpaque(context.Background(), iss.MintOpaque(iss.Claims(audience, nil))); err != nil {
			t.Fatal(err)
		}
	}
	if st := in.Stats(); st.Entries != 3 {
		t.Errorf("%d entries, want 3", st.Entries)
	}
}

func TestIssuerAnswers(t *testing.T) {
	const issuer = "https://tenant.example.com/"
	for _, tc := range []struct {
		name   string
		status int
		header map[string]string
		body   string
		want   error // nil: active
	}{
		{"active", 200, nil, `{"active":true,"aud":"api","sub":"s"}`, nil},
		{"active without iss", 200, nil, `{"active":true}`, nil},
		{"access token type", 200, nil, `{"active":true,"token_type":"Bearer"}`, nil},
		{"inactive", 200, nil, `{"active":false}`, middleware.ErrInactive},
		{"active is a string", 200, nil, `{"active":"true"}`, middleware.ErrInactive},
		{"active is a number", 200, nil, `{"active":1}`, middleware.ErrInactive},
		{"no active", 200, nil, `{"sub":"s"}`, middleware.ErrInactive},
		{"refresh token", 200, nil, `{"active":true,"token_use":"refresh_token"}`, middleware.ErrInactive},
		{"another issuer", 200, nil, `{"active":true,"iss":"https://tenant.example.com"}`, middleware.ErrIssuer},
		{"malformed claims", 200, nil, `{"active":true,"exp":"tomorrow"}`, middleware.ErrIssuerUnavailable},
		{"duplicate claims", 200, nil, `{"active":true,"sub":"a","sub":"b"}`, middleware.ErrIssuerUnavailable},
		{"array", 200, nil, `[{"active":true}]`, middleware.ErrIssuerUnavailable},
		{"null", 200, nil, `null`, middleware.ErrIssuerUnavailable},
		{"empty", 200, nil, ``, middleware.ErrIssuerUnavailable},
		{"truncated", 200, nil, `{"active":true`, middleware.ErrIssuerUnavailable},
		{"too large", 200, nil, `{"active":true,"x":"` + strings.Repeat("x", 1<<20) + `"}`, middleware.ErrIssuerUnavailable},
		{"server error", 500, nil, `{"active":true}`, middleware.ErrIssuerUnavailable},
		{"rate limited", 429, nil, `{"active":true}`, middleware.ErrIssuerUnavailable},
		{"redirect", 307, map[string]string{"Location": "https://elsewhere.example.com/introspect"}, ``, middleware.ErrIssuerUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			in, err := opaque.NewIntrospector(srv.URL+"/introspect", opaque.IntrospectorOptions{ClientID: "c", ClientSecret: "s", Issuer: issuer})
			if err != nil {
				t.Fatal(err)
			}
			c, err := in.CheckOpaque(context.Background(), "opaque-token")
			if tc.want == nil {
				if err != nil || c.Issuer != issuer {
					t.Errorf("got %+v %v, want active claims of %s", c, err, issuer)
				}
				return
			}
			if !errors.Is(err, tc.want) || c != nil {
				t.Errorf("got %v %v, want %v", c, err, tc.want)
			}
		})
	}
}

func TestUserInfoAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		header map[string]string
		body   string
		want   error
	}{
		{"profile", 200, nil, `{"sub":"auth0|1","email":"a@example.com"}`, nil},
		{"refused", 401, map[string]string{"WWW-Authenticate": `Bearer error="invalid_token"`}, ``, middleware.ErrInactive},
		{"insufficient scope", 403, map[string]string{"WWW-Authenticate": `Bearer error="insufficient_scope"`}, ``, middleware.ErrInactive},
		{"forbidden by a proxy", 403, nil, `<html>`, middleware.ErrIssuerUnavailable},
		{"garbage", 200, nil, `<html>`, middleware.ErrIssuerUnavailable},
		{"signed profile", 200, map[string]string{"Content-Type": "application/jwt"}, `eyJhbGciOiJSUzI1NiJ9.e30.c2ln`, middleware.ErrIssuerUnavailable},
		{"no sub", 200, nil, `{"email":"a@example.com"}`, middleware.ErrIssuerUnavailable},
		{"sub not a string", 200, nil, `{"sub":1}`, middleware.ErrIssuerUnavailable},
		{"server error", 502, nil, ``, middleware.ErrIssuerUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != "Bearer opaque-token" {
					t.Errorf("Authorization %q", r.Header.Get("Authorization"))
				}
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			ui, err := opaque.NewUserInfo(srv.URL+"/userinfo", opaque.UserInfoOptions{Issuer: "https://tenant.example.com/"})
			if err != nil {
				t.Fatal(err)
			}
			c, err := ui.CheckOpaque(context.Background(), "opaque-token")
			if tc.want == nil {
				if err != nil || c.Subject != "auth0|1" {
					t.Errorf("got %+v %v", c, err)
				}
				return
			}
			if !errors.Is(err, tc.want) || c != nil {
				t.Errorf("got %v %v, want %v", c, err, tc.want)
			}
		})
	}
}

func TestImplausibleTokenNotSent(t *testing.T) {
	iss := newIssuer(t)
	in := newIntrospector(t, iss, opaque.IntrospectorOptions{})
	for _, token := range []string{"", "a b", "a\r\nX-Injected: 1", "tok%en", strings.Repeat("a", 1<<17)} {
		if _, err := in.CheckOpaque(context.Background(), token); !errors.Is(err, middleware.ErrInactive) {
			t.Errorf("%.20q: %v, want inactive", token, err)
		}
	}
	if n := iss.IntrospectionRequests(); n != 0 {
		t.Errorf("%d calls, want none", n)
	}
}

func TestOptionsErrors(t *testing.T) {
	_, err := opaque.NewIntrospector("http://issuer.example.com/introspect", opaque.IntrospectorOptions{Timeout: -1, MaxEntries: -1, MaxConcurrency: -1})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"endpoint", "no issuer", "no client ID", "no client secret", "negative timeout", "negative cache bound", "negative MaxConcurrency"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	_, err = opaque.NewUserInfo("https://issuer.example.com/userinfo?x=1", opaque.UserInfoOptions{Issuer: "http://issuer.example.com/"})
	if err == nil || !strings.Contains(err.Error(), "endpoint") || !strings.Contains(err.Error(), "issuer") {
		t.Errorf("userinfo: %v", err)
	}
}

func TestDiscover(t *testing.T) {
	iss := newIssuer(t)
	ui, in, err := opaque.Discover(context.Background(), nil, iss.URL())
	if err != nil {
		t.Fatal(err)
	}
	if ui != iss.UserInfoURL() || in != iss.IntrospectionURL() {
		t.Errorf("Discover = %q, %q", ui, in)
	}

	for _, tc := range []struct{ name, doc, want string }{
		{"issuer mismatch", `{"issuer":"https://evil.example.com/","userinfo_endpoint":"https://evil.example.com/userinfo"}`, "names issuer"},
		{"no endpoints", `{"issuer":"ISSUER"}`, "neither"},
		{"http endpoint", `{"issuer":"ISSUER","introspection_endpoint":"http://issuer.example.com/introspect"}`, "https"},
		{"not JSON", `<html>`, "failed to decode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var url string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/.well-known/openid-configuration" {
					http.NotFound(w, r)
					return
				}
				io.WriteString(w, strings.ReplaceAll(tc.doc, "ISSUER", url))
			}))
			defer srv.Close()
			url = srv.URL + "/"
			if _, _, err := opaque.Discover(context.Background(), nil, url); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/secret"
	if err := os.WriteFile(path, []byte(clientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := opaque.ReadSecretFile(path)
	if err != nil || string(s) != clientSecret {
		t.Errorf("got %v, want the secret without its newline", err)
	}
	if err := os.WriteFile(path, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := opaque.ReadSecretFile(path); err == nil {
		t.Error("empty secret file accepted")
	}
	if _, err := opaque.ReadSecretFile(dir + "/missing"); err == nil {
		t.Error("missing secret file accepted")
	}
}

// An issuer outage under a flood of made-up tokens (each a new call) must
// not log one warning per token: the first failure is logged at once, then
// at most one line a minute, counting the failures (the soak of issue 15
// saw 333 lines in 4 s of outage).
func TestIssuerFailureWarningsSpaced(t *testing.T) {
	iss := newIssuer(t)
	clk := newClock()
	var logs syncbuf.Buffer
	in := newIntrospector(t, iss, opaque.IntrospectorOptions{Now: clk.Now, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	iss.SetDown(true)
	var tokens []string
	fail := func() {
		t.Helper()
		tok := randomToken(t)
		tokens = append(tokens, tok)
		if _, err := in.CheckOpaque(context.Background(), tok); !errors.Is(err, middleware.ErrIssuerUnavailable) {
			t.Fatalf("issuer down: %v, want issuer_unavailable", err)
		}
	}
	warnings := func() int { return strings.Count(logs.String(), `"msg":"opaque: issuer check failed"`) }
	for range 20 {
		fail()
	}
	if n := warnings(); n != 1 {
		t.Errorf("%d warnings for 20 failed calls within a minute, want 1:\n%s", n, logs.String())
	}
	clk.Advance(time.Minute)
	fail()
	if n := warnings(); n != 2 {
		t.Errorf("%d warnings after a minute more, want 2:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `"failures_so_far":21`) {
		t.Errorf("the second warning does not count the failures:\n%s", logs.String())
	}
	if st := in.Stats(); st.Errors != 21 {
		t.Errorf("Stats.Errors %d, want every failure counted: 21", st.Errors)
	}
	for _, tok := range tokens {
		if strings.Contains(logs.String(), tok) {
			t.Fatal("a token was logged")
		}
	}
}
