package middleware_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/internal/certtest"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/scopes"
)

// clientCert is a self-signed client certificate made for one test.
type clientCert = certtest.Client

func newClientCert(t testing.TB, cn string) clientCert { return certtest.NewClient(t, cn) }

// TestCertificateBoundToken: a token with cnf.x5t#S256 passes only with the
// client certificate it names — from the TLS connection, or from a trusted
// proxy's Client-Cert or X-Forwarded-Client-Cert — and is never taken for
// a bearer token; a DPoP-bound one (jkt) sent as Bearer is a downgrade, and other cnf methods (jwk) are refused.
func TestCertificateBoundToken(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{})
	g, err := middleware.NewGuard(v, middleware.GuardOptions{TrustedProxies: []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"}})
	if err != nil {
		t.Fatal(err)
	}
	alice, mallory := newClientCert(t, "alice"), newClientCert(t, "mallory")
	tok := func(cnf map[string]any) string {
		return sign(t, key, nil, claimsAt(tenant, epoch, map[string]any{"scope": "read:contacts", "cnf": cnf}))
	}
	bound := tok(map[string]any{"x5t#S256": alice.X5T()})
	bearer := sign(t, key, nil, claimsAt(tenant, epoch, map[string]any{"scope": "read:contacts"}))
	const direct, proxy, untrusted = "203.0.113.5:4711", "10.1.2.3:5000", "192.0.2.8:5000"
	for _, tt := range []struct {
		name  string
		token string
		peer  middleware.Peer
		h     http.Header
		want  *middleware.Error // nil: allowed
	}{
		{"matching TLS certificate", bound, middleware.Peer{Addr: direct, Certificate: alice.Cert}, nil, nil},
		{"no certificate", bound, middleware.Peer{Addr: direct}, nil, middleware.ErrNoCertificate},
		{"another certificate", bound, middleware.Peer{Addr: direct, Certificate: mallory.Cert}, nil, middleware.ErrCertificateMismatch},
		{"bearer token, no certificate", bearer, middleware.Peer{Addr: direct}, nil, nil},
		{"bearer token, a certificate", bearer, middleware.Peer{Addr: direct, Certificate: mallory.Cert}, nil, nil},

		{"Client-Cert from a trusted proxy", bound, middleware.Peer{Addr: proxy}, http.Header{"Client-Cert": {alice.ClientCertHeader()}}, nil},
		{"Client-Cert from a trusted IPv6 proxy", bound, middleware.Peer{Addr: "[2001:db8::1]:443"}, http.Header{"Client-Cert": {alice.ClientCertHeader()}}, nil},
		{"Client-Cert from a trusted single address", bound, middleware.Peer{Addr: "192.0.2.7:1"}, http.Header{"Client-Cert": {alice.ClientCertHeader()}}, nil},
		{"XFCC Hash from a trusted proxy", bound, middleware.Peer{Addr: proxy}, http.Header{"X-Forwarded-Client-Cert": {alice.XFCCHash()}}, nil},
		{"XFCC Cert from a trusted proxy", bound, middleware.Peer{Addr: proxy}, http.Header{"X-Forwarded-Client-Cert": {alice.XFCCCert()}}, nil},
		// The last element is the hop in front of us; earlier ones are
		// what other proxies said of their clients.
		{"XFCC last element counts", bound, middleware.Peer{Addr: proxy}, http.Header{"X-Forwarded-Client-Cert": {alice.XFCCHash() + "," + mallory.XFCCHash()}}, middleware.ErrCertificateMismatch},
		{"XFCC last element of two lines", bound, middleware.Peer{Addr: proxy}, http.Header{"X-Forwarded-Client-Cert": {mallory.XFCCHash(), alice.XFCCCert()}}, nil},
		{"Client-Cert of another certificate", bound, middleware.Peer{Addr: proxy}, http.Header{"Client-Cert": {mallory.ClientCertHeader()}}, middleware.ErrCertificateMismatch},
		{"Client-Cert and XFCC disagree", bound, middleware.Peer{Addr: proxy}, http.Header{"Client-Cert": {alice.ClientCertHeader()}, "X-Forwarded-Client-Cert": {mallory.XFCCHash()}}, middleware.ErrNoCertificate},
		{"two Client-Cert lines", bound, middleware.Peer{Addr: proxy}, http.Header{"Client-Cert": {alice.ClientCertHeader(), alice.ClientCertHeader()}}, middleware.ErrNoCertificate},
		{"Client-Cert not a byte sequence", bound, middleware.Peer{Addr: proxy}, http.Header{"Client-Cert": {base64.StdEncoding.EncodeToString(alice.Cert.Raw)}}, middleware.ErrNoCertificate},
		// A trusted proxy's own TLS certificate is the proxy's.
		{"trusted proxy's own certificate", bound, middleware.Peer{Addr: proxy, Certificate: alice.Cert}, nil, middleware.ErrNoCertificate},

		// A client cannot assert its own certificate.
		{"Client-Cert from an untrusted peer", bound, middleware.Peer{Addr: untrusted}, http.Header{"Client-Cert": {alice.ClientCertHeader()}}, middleware.ErrNoCertificate},
		{"XFCC from an untrusted peer", bound, middleware.Peer{Addr: untrusted}, http.Header{"X-Forwarded-Client-Cert": {alice.XFCCHash()}}, middleware.ErrNoCertificate},
		{"Client-Cert from an unknown peer", bound, middleware.Peer{}, http.Header{"Client-Cert": {alice.ClientCertHeader()}}, middleware.ErrNoCertificate},
		{"untrusted header beside a TLS certificate", bound, middleware.Peer{Addr: untrusted, Certificate: mallory.Cert}, http.Header{"Client-Cert": {alice.ClientCertHeader()}}, middleware.ErrCertificateMismatch},

		// Bindings tokenward cannot check are refused, not ignored.
		{"DPoP-bound (jkt)", tok(map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}), middleware.Peer{Addr: direct, Certificate: alice.Cert}, nil, middleware.ErrDPoPDowngrade},
		{"both x5t#S256 and jkt", tok(map[string]any{"x5t#S256": alice.X5T(), "jkt": "x"}), middleware.Peer{Addr: direct, Certificate: alice.Cert}, nil, middleware.ErrDPoPDowngrade},
		{"cnf.jwk", tok(map[string]any{"jwk": map[string]any{"kty": "EC"}}), middleware.Peer{Addr: direct, Certificate: alice.Cert}, nil, middleware.ErrUnsupportedBinding},
		{"x5t#S256 beside an unknown member", tok(map[string]any{"x5t#S256": alice.X5T(), "kid": "k"}), middleware.Peer{Addr: direct, Certificate: alice.Cert}, nil, middleware.ErrUnsupportedBinding},
		{"empty cnf", tok(map[string]any{}), middleware.Peer{Addr: direct, Certificate: alice.Cert}, nil, middleware.ErrUnsupportedBinding},
		{"x5t#S256 in another case", tok(map[string]any{"X5T#S256": alice.X5T()}), middleware.Peer{Addr: direct, Certificate: alice.Cert}, nil, middleware.ErrUnsupportedBinding},
		{"x5t#S256 padded", tok(map[string]any{"x5t#S256": alice.X5T() + "="}), middleware.Peer{Addr: direct, Certificate: alice.Cert}, nil, middleware.ErrCertificateMismatch},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Authorization": {"Bearer " + tt.token}}
			for k, vs := range tt.h {
				h[k] = vs
			}
			claims, e := g.Check(context.Background(), middleware.Request{Header: h, Peer: tt.peer}, scopes.All("read:contacts"))
			switch {
			case tt.want == nil && e != nil:
				t.Fatalf("refused: %v", e)
			case tt.want == nil:
				if claims == nil {
					t.Fatal("allowed without claims")
				}
				if tt.token == bound && (claims.Confirmation == nil || claims.Confirmation.CertThumbprint != alice.X5T()) {
					t.Errorf("Confirmation %+v, want the thumbprint %s", claims.Confirmation, alice.X5T())
				}
			case e == nil:
				t.Fatalf("allowed, want reason %s", tt.want.Reason)
			case !errors.Is(e, tt.want):
				t.Fatalf("error %v, want reason %s", e, tt.want.Reason)
			case e.Status() != http.StatusUnauthorized || e.Code() != "invalid_token":
				t.Errorf("status %d code %q, want 401 invalid_token", e.Status(), e.Code())
			case claims != nil:
				t.Error("claims returned with a binding refusal")
			}
		})
	}
}

// TestCertificateBoundMalformedCnf: a cnf that is not an object of string
// thumbprints makes the token malformed, on both decoding paths.
func TestCertificateBoundMalformedCnf(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{})
	for _, cnf := range []string{`null`, `"x"`, `[]`, `{"x5t#S256":7}`, `{"x5t#S256":"a","x5t#S256":"b"}`, `{"jkt":null}`} {
		for _, iss := range []string{`"iss":"` + tenant + `"`, `"iss":"` + tenant + `","sub":"caf\u00e9"`} { // fast path, then encoding/json
			claims := `{` + iss + `,"aud":"` + audience + `","exp":` + jsonNumber(epoch.Add(time.Hour).Unix()) + `,"cnf":` + cnf + `}`
			c, err := v.Validate(context.Background(), signRaw(t, key, `{"alg":"RS256","typ":"JWT","kid":"`+key.ID+`"}`, claims))
			if !errors.Is(err, middleware.ErrMalformed) {
				t.Errorf("cnf %s: claims %v, error %v; want malformed", cnf, c, err)
			}
		}
	}
}

func jsonNumber(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestCertificateBoundCacheHit: the verified-token cache remembers the
// token, not the request: a hit checks the certificate again.
func TestCertificateBoundCacheHit(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{CacheSize: 16})
	g, err := middleware.NewGuard(v, middleware.GuardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alice, mallory := newClientCert(t, "alice"), newClientCert(t, "mallory")
	bound := sign(t, key, nil, claimsAt(tenant, epoch, map[string]any{"cnf": map[string]any{"x5t#S256": alice.X5T()}}))
	check := func(c *x509.Certificate) *middleware.Error {
		_, e := g.Check(context.Background(), middleware.Request{
			Header: http.Header{"Authorization": {"Bearer " + bound}}, Peer: middleware.Peer{Addr: "198.51.100.1:1", Certificate: c}}, scopes.Requirement{})
		return e
	}
	if e := check(alice.Cert); e != nil {
		t.Fatalf("first request with the bound certificate refused: %v", e)
	}
	if e := check(mallory.Cert); !errors.Is(e, middleware.ErrCertificateMismatch) {
		t.Errorf("cache hit with another certificate: %v, want certificate_mismatch", e)
	}
	if e := check(nil); !errors.Is(e, middleware.ErrNoCertificate) {
		t.Errorf("cache hit without a certificate: %v, want no_certificate", e)
	}
	if e := check(alice.Cert); e != nil {
		t.Errorf("cache hit with the bound certificate refused: %v", e)
	}
	if s := v.CacheStats(); s.Hits != 3 || s.Misses != 1 {
		t.Errorf("cache stats %+v, want 3 hits and 1 miss: the refusals must come from hits", s)
	}
}

// TestNewGuardTrustedProxies: every bad entry is reported at once, and a
// prefix of every address is refused.
func TestNewGuardTrustedProxies(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{})
	_, err := middleware.NewGuard(v, middleware.GuardOptions{TrustedProxies: []string{"10.0.0.1", "nope", "0.0.0.0/0", "::/0", "10.0.0.0/33", "fe80::1%eth0"}})
	if err == nil {
		t.Fatal("bad trusted proxies accepted")
	}
	for _, want := range []string{`"nope"`, `"0.0.0.0/0"`, `"::/0"`, `"10.0.0.0/33"`, `"fe80::1%eth0"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), `"10.0.0.1"`) {
		t.Errorf("error %q names a valid entry", err)
	}
	g, err := middleware.NewGuard(v, middleware.GuardOptions{TrustedProxies: []string{" 10.0.0.1 ", "::ffff:192.0.2.0/120"}})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{"10.0.0.1:80": true, "10.0.0.2:80": false, "192.0.2.9:1": true, "[::ffff:192.0.2.9]:1": true, "10.0.0.1": true, "": false, "garbage": false} {
		if got := g.Trusted(addr); got != want {
			t.Errorf("Trusted(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestCertificateBoundOverTLS: the middleware behind a real TLS listener
// that requests client certificates (httptest), with Go's TLS client.
func TestCertificateBoundOverTLS(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{})
	mw, err := middleware.New(v, middleware.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := middleware.ClaimsFrom(r.Context())
		w.Header().Set("Seen-Client-Cert", r.Header.Get("Client-Cert"))
		io.WriteString(w, c.Confirmation.CertThumbprint)
	})))
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	alice, mallory := newClientCert(t, "alice"), newClientCert(t, "mallory")
	bound := sign(t, key, nil, claimsAt(tenant, epoch, map[string]any{"cnf": map[string]any{"x5t#S256": alice.X5T()}}))
	client := func(c *clientCert) *http.Client {
		tr := srv.Client().Transport.(*http.Transport).Clone()
		if c != nil {
			tr.TLSClientConfig.Certificates = []tls.Certificate{c.TLS}
		}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	for _, tt := range []struct {
		name       string
		cert       *clientCert
		clientCert string // a Client-Cert header the client sends itself
		status     int
		reason     string // in the challenge's error_description
	}{
		{"matching certificate", &alice, "", 200, ""},
		{"no certificate", nil, "", 401, "none was presented"},
		{"another certificate", &mallory, "", 401, "does not match"},
		{"no certificate, Client-Cert asserted by the client", nil, alice.ClientCertHeader(), 401, "none was presented"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+"/", nil)
			req.Header.Set("Authorization", "Bearer "+bound)
			if tt.clientCert != "" {
				req.Header.Set("Client-Cert", tt.clientCert)
			}
			resp, err := client(tt.cert).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.status)
			}
			if tt.status == 200 {
				if string(body) != alice.X5T() {
					t.Errorf("handler saw thumbprint %q, want %q", body, alice.X5T())
				}
				return
			}
			ch := resp.Header.Get("WWW-Authenticate")
			if !strings.Contains(ch, `error="invalid_token"`) || !strings.Contains(ch, tt.reason) {
				t.Errorf("challenge %q, want invalid_token saying %q", ch, tt.reason)
			}
		})
	}
}

// TestCertHeadersStrippedFromUntrustedPeers: behind the middleware, a
// handler sees a certificate header only from a trusted proxy, and only
// then does the header prove a binding.
func TestCertHeadersStrippedFromUntrustedPeers(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{})
	alice := newClientCert(t, "alice")
	bound := sign(t, key, nil, claimsAt(tenant, epoch, map[string]any{"cnf": map[string]any{"x5t#S256": alice.X5T()}}))
	bearer := sign(t, key, nil, claimsAt(tenant, epoch, nil))
	for _, tt := range []struct {
		name    string
		trusted []string
		bound   int  // status of the bound token
		seen    bool // the handler sees the headers
	}{
		{"trusted loopback", []string{"127.0.0.0/8", "::1"}, 200, true},
		{"untrusted loopback", []string{"192.0.2.1"}, 401, false},
		{"no trusted proxies", nil, 401, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mw, err := middleware.New(v, middleware.Options{TrustedProxies: tt.trusted})
			if err != nil {
				t.Fatal(err)
			}
			seen := make(chan []string, 2)
			srv := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var names []string
				for k := range r.Header {
					if strings.Contains(strings.ToLower(k), "cert") {
						names = append(names, k)
					}
				}
				seen <- names
			})))
			defer srv.Close()
			for _, tok := range []string{bound, bearer} {
				req, _ := http.NewRequest("GET", srv.URL+"/", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Client-Cert", alice.ClientCertHeader())
				req.Header["Client_cert"] = []string{alice.ClientCertHeader()}
				req.Header.Set("X-Forwarded-Client-Cert", alice.XFCCHash())
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				want := 200
				if tok == bound {
					want = tt.bound
				}
				if resp.StatusCode != want {
					t.Fatalf("status %d, want %d", resp.StatusCode, want)
				}
				if want != 200 {
					continue
				}
				names := <-seen
				if tt.seen && len(names) != 3 || !tt.seen && len(names) != 0 {
					t.Errorf("handler saw %v; want the three headers: %v", names, tt.seen)
				}
			}
		})
	}
}

// FuzzCertHeaders: the Client-Cert and X-Forwarded-Client-Cert parsers never
// panic on anything a trusted proxy (or a client, for the parser's sake)
// sends, and read the certificate back from the forms proxies write: a
// Client-Cert byte sequence, an XFCC element with Hash= or a quoted Cert=
// after other elements, whatever those hold.
func FuzzCertHeaders(f *testing.F) {
	c := newClientCert(f, "seed")
	f.Add(c.Cert.Raw, c.ClientCertHeader(), c.XFCCHash())
	f.Add([]byte{0}, ":", `By=x;Hash=00,Cert="%`)
	f.Add([]byte("x"), "::", `a="\",b=c`)
	f.Add([]byte("xyz"), ":YQ:", `By="a;b,c";URI=x,Hash=;Cert=""`)
	f.Fuzz(func(t *testing.T, der []byte, header, xfcc string) {
		// Anything: an answer or an error, never a panic.
		middleware.ParseClientCert([]string{header})
		middleware.ParseXFCC([]string{xfcc})
		middleware.ParseXFCC([]string{header, xfcc})

		if len(der) == 0 {
			return
		}
		want := sha256.Sum256(der)
		got, err := middleware.ParseClientCert([]string{" :" + base64.StdEncoding.EncodeToString(der) + ": "})
		if err != nil || got != want {
			t.Fatalf("Client-Cert of %x: %x, %v", der, got, err)
		}
		got, err = middleware.ParseClientCert([]string{":" + base64.RawStdEncoding.EncodeToString(der) + ":"})
		if err != nil || got != want {
			t.Fatalf("unpadded Client-Cert of %x: %x, %v", der, got, err)
		}
		// An earlier hop's element, quoted, whatever it says.
		earlier := `By="` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(xfcc) + `"`
		p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		for _, v := range []string{
			"Hash=" + hex.EncodeToString(want[:]),
			earlier + ",Hash=" + hex.EncodeToString(want[:]) + `;Subject="CN=a,O=b;c"`,
			earlier + `,By=spiffe://x;Cert="` + url.PathEscape(string(p)) + `";Hash=` + hex.EncodeToString(want[:]),
			earlier + `, Cert="` + percentAll(p) + `"`,
		} {
			got, err = middleware.ParseXFCC([]string{v})
			if err != nil || got != want {
				t.Fatalf("XFCC %q: %x, %v; want %x", v, got, err, want)
			}
		}
	})
}

// percentAll percent-encodes every byte, as a proxy may.
func percentAll(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		sb.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
	}
	return sb.String()
}

// TestCertificateBoundConcurrentHits: many requests with one cached bound
// token and different certificates at once each get their own answer.
func TestCertificateBoundConcurrentHits(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{CacheSize: 16})
	g, err := middleware.NewGuard(v, middleware.GuardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alice, mallory := newClientCert(t, "alice"), newClientCert(t, "mallory")
	bound := sign(t, key, nil, claimsAt(tenant, epoch, map[string]any{"cnf": map[string]any{"x5t#S256": alice.X5T()}}))
	cases := []struct {
		cert *x509.Certificate
		want *middleware.Error
	}{{alice.Cert, nil}, {mallory.Cert, middleware.ErrCertificateMismatch}, {nil, middleware.ErrNoCertificate}}
	const workers, each = 8, 200
	errs := make(chan string, workers)
	for w := range workers {
		go func() {
			defer func() { errs <- "" }()
			for i := range each {
				tc := cases[(w+i)%len(cases)]
				_, e := g.Check(context.Background(), middleware.Request{Header: http.Header{"Authorization": {"Bearer " + bound}},
					Peer: middleware.Peer{Addr: "198.51.100.1:1", Certificate: tc.cert}}, scopes.Requirement{})
				if tc.want == nil && e != nil || tc.want != nil && !errors.Is(e, tc.want) {
					errs <- fmt.Sprintf("certificate %v: %v, want %v", tc.cert != nil, e, tc.want)
					return
				}
			}
		}()
	}
	for range workers {
		if msg := <-errs; msg != "" {
			t.Error(msg)
			<-errs // its deferred send
		}
	}
	if s := v.CacheStats(); s.Hits < workers*each-workers {
		t.Errorf("cache stats %+v: the requests should be hits", s)
	}
}
