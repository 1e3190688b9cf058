package proxy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/internal/certtest"
	"github.com/tokenward/tokenward/proxy"
)

// clientCert is a self-signed client certificate made for one test.
type clientCert = certtest.Client

func newClientCert(t testing.TB, cn string) clientCert { return certtest.NewClient(t, cn) }

// TestCertificateBoundProxy: through the reverse proxy, a certificate-bound
// token passes with its certificate named by a trusted proxy (Client-Cert,
// XFCC Hash= or Cert=) and the upstream never sees those headers; from an
// untrusted address the same headers are ignored (the token is refused) and
// removed in every spelling (a bearer token passes without them).
func TestCertificateBoundProxy(t *testing.T) {
	iss := newIssuer(t)
	alice, mallory := newClientCert(t, "alice"), newClientCert(t, "mallory")
	bound := mint(t, iss, map[string]any{"scope": "api read:contacts", "cnf": map[string]any{"x5t#S256": alice.X5T()}})
	bearer := withScope(t, iss, "api read:contacts")
	up := newUpstream(t)
	start := func(trusted []string) *httptest.Server {
		cfg := defaultConfig(t, iss)
		cfg.TrustedProxies = trusted
		return startProxy(t, up.URL, cfg, proxy.UpstreamOptions{})
	}
	trusting := start([]string{"127.0.0.1", "::1"})
	distrusting := start([]string{"192.0.2.0/24"})
	for _, tt := range []struct {
		name   string
		srv    *httptest.Server
		token  string
		header http.Header
		status int
	}{
		{"trusted Client-Cert", trusting, bound, http.Header{"Client-Cert": {alice.ClientCertHeader()}}, 200},
		{"trusted XFCC Hash", trusting, bound, http.Header{"X-Forwarded-Client-Cert": {alice.XFCCHash()}}, 200},
		{"trusted XFCC Cert", trusting, bound, http.Header{"X-Forwarded-Client-Cert": {alice.XFCCCert()}}, 200},
		{"trusted, another certificate", trusting, bound, http.Header{"Client-Cert": {mallory.ClientCertHeader()}}, 401},
		{"trusted, no certificate", trusting, bound, nil, 401},
		{"untrusted Client-Cert", distrusting, bound, http.Header{"Client-Cert": {alice.ClientCertHeader()}}, 401},
		{"untrusted XFCC", distrusting, bound, http.Header{"X-Forwarded-Client-Cert": {alice.XFCCHash()}}, 401},
		{"untrusted, bearer token", distrusting, bearer, http.Header{"Client-Cert": {alice.ClientCertHeader()},
			"Client_cert": {alice.ClientCertHeader()}, "X-Forwarded-Client-Cert": {alice.XFCCCert()}, "Client-Cert-Chain": {"x"}}, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, tt.srv, request{path: "/api/contacts/1", token: tt.token, header: tt.header})
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.status)
			}
			if tt.status != 200 {
				up.none(t)
				if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
					t.Errorf("challenge %q, want invalid_token", resp.Header.Get("WWW-Authenticate"))
				}
				return
			}
			for k := range up.last(t).header {
				if strings.Contains(strings.ToLower(k), "cert") {
					t.Errorf("the upstream received %s", k)
				}
			}
		})
	}
}

// TestCertificateBoundProxyOverTLS: the proxy behind a real TLS listener
// that requests client certificates reads the connection's certificate.
func TestCertificateBoundProxyOverTLS(t *testing.T) {
	iss := newIssuer(t)
	alice, mallory := newClientCert(t, "alice"), newClientCert(t, "mallory")
	bound := mint(t, iss, map[string]any{"scope": "api read:contacts", "cnf": map[string]any{"x5t#S256": alice.X5T()}})
	up := newUpstream(t)
	p, err := proxy.New(up.URL, defaultConfig(t, iss), proxy.UpstreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(p)
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	for _, tt := range []struct {
		name   string
		cert   *clientCert
		status int
	}{{"its certificate", &alice, 200}, {"another certificate", &mallory, 401}, {"no certificate", nil, 401}} {
		t.Run(tt.name, func(t *testing.T) {
			tr := srv.Client().Transport.(*http.Transport).Clone()
			if tt.cert != nil {
				tr.TLSClientConfig.Certificates = []tls.Certificate{tt.cert.TLS}
			}
			defer tr.CloseIdleConnections()
			resp, body := doAt(t, &http.Client{Transport: tr}, srv.URL, request{path: "/api/contacts/1", token: bound})
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.status)
			}
			if tt.status == 200 {
				up.last(t)
			} else {
				up.none(t)
			}
		})
	}
}

// TestCertificateBoundForwardAuth: forward-auth reads the certificate
// headers from the gateway only when the gateway's address is trusted.
func TestCertificateBoundForwardAuth(t *testing.T) {
	iss := newIssuer(t)
	alice := newClientCert(t, "alice")
	bound := mint(t, iss, map[string]any{"scope": "api read:contacts", "cnf": map[string]any{"x5t#S256": alice.X5T()}})
	for _, tt := range []struct {
		name    string
		trusted []string
		status  int
	}{{"trusted gateway", []string{"127.0.0.0/8", "::1"}, 200}, {"untrusted gateway", []string{"192.0.2.1"}, 401}, {"no trusted proxies", nil, 401}} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultConfig(t, iss)
			cfg.TrustedProxies = tt.trusted
			fa, err := proxy.NewForwardAuth(cfg)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(fa)
			defer srv.Close()
			for _, h := range []http.Header{{"Client-Cert": {alice.ClientCertHeader()}}, {"X-Forwarded-Client-Cert": {alice.XFCCHash()}}} {
				h.Set("X-Original-Method", "GET")
				h.Set("X-Original-URI", "/api/contacts/1")
				resp, body := do(t, srv, request{path: "/auth", token: bound, header: h})
				if resp.StatusCode != tt.status {
					t.Errorf("%v: status %d (%s), want %d", h, resp.StatusCode, body, tt.status)
				}
			}
		})
	}
}

// TestTrustedProxiesChecked: a bad trusted proxy fails the constructors.
func TestTrustedProxiesChecked(t *testing.T) {
	iss := newIssuer(t)
	cfg := defaultConfig(t, iss)
	cfg.TrustedProxies = []string{"10.0.0.0/8", "not-an-address"}
	if _, err := proxy.New("http://127.0.0.1:1", cfg, proxy.UpstreamOptions{}); err == nil || !strings.Contains(err.Error(), "not-an-address") {
		t.Errorf("proxy.New: %v, want the bad entry named", err)
	}
	if _, err := proxy.NewForwardAuth(cfg); err == nil || !strings.Contains(err.Error(), "not-an-address") {
		t.Errorf("proxy.NewForwardAuth: %v, want the bad entry named", err)
	}
}

// testCA issues certificates signed by a CA made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t testing.TB) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert: cert, key: key}
}

// issued is a certificate the CA issued, with its key's PKCS #8 DER.
type issued struct {
	clientCert
	keyDER []byte
}

func (ca testCA) issue(t testing.TB, cn string, usage x509.ExtKeyUsage) issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.DNSNames = []string{cn}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return issued{clientCert{Cert: cert, TLS: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}, keyDER}
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestForwardClientCert: with ForwardClientCert, the upstream gets the
// certificate tokenward judged — a trusted proxy's headers as they came, or
// the TLS connection's certificate as Client-Cert — and never one a client
// asserted itself.
func TestForwardClientCert(t *testing.T) {
	iss := newIssuer(t)
	alice, mallory := newClientCert(t, "alice"), newClientCert(t, "mallory")
	bound := mint(t, iss, map[string]any{"scope": "api read:contacts", "cnf": map[string]any{"x5t#S256": alice.X5T()}})
	bearer := withScope(t, iss, "api read:contacts")
	up := newUpstream(t)
	start := func(trusted []string) proxy.Config {
		cfg := defaultConfig(t, iss)
		cfg.TrustedProxies, cfg.ForwardClientCert = trusted, true
		return cfg
	}
	certHeaders := func(h http.Header) http.Header {
		out := http.Header{}
		for k, v := range h {
			if strings.Contains(strings.ToLower(k), "cert") {
				out[k] = v
			}
		}
		return out
	}

	t.Run("trusted proxy", func(t *testing.T) {
		srv := startProxy(t, up.URL, start([]string{"127.0.0.1", "::1"}), proxy.UpstreamOptions{})
		sent := http.Header{"Client-Cert": {alice.ClientCertHeader()}, "X-Forwarded-Client-Cert": {alice.XFCCHash()}, "Client_cert": {"x"}}
		resp, body := do(t, srv, request{path: "/api/contacts/1", token: bound, header: sent})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d (%s)", resp.StatusCode, body)
		}
		want := http.Header{"Client-Cert": sent["Client-Cert"], "X-Forwarded-Client-Cert": sent["X-Forwarded-Client-Cert"]}
		if got := certHeaders(up.last(t).header); sprintHeader(got) != sprintHeader(want) {
			t.Errorf("the upstream got %v, want %v", got, want)
		}
	})
	t.Run("untrusted peer", func(t *testing.T) {
		srv := startProxy(t, up.URL, start(nil), proxy.UpstreamOptions{})
		resp, body := do(t, srv, request{path: "/api/contacts/1", token: bearer, header: http.Header{"Client-Cert": {mallory.ClientCertHeader()}}})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d (%s)", resp.StatusCode, body)
		}
		if got := certHeaders(up.last(t).header); len(got) != 0 {
			t.Errorf("the upstream got %v", got)
		}
	})
	t.Run("TLS connection", func(t *testing.T) {
		p, err := proxy.New(up.URL, start(nil), proxy.UpstreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(p)
		srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
		srv.StartTLS()
		defer srv.Close()
		tr := srv.Client().Transport.(*http.Transport).Clone()
		tr.TLSClientConfig.Certificates = []tls.Certificate{alice.TLS}
		defer tr.CloseIdleConnections()
		resp, body := doAt(t, &http.Client{Transport: tr}, srv.URL, request{path: "/api/contacts/1", token: bound,
			header: http.Header{"Client-Cert": {mallory.ClientCertHeader()}}})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d (%s)", resp.StatusCode, body)
		}
		want := http.Header{"Client-Cert": {alice.ClientCertHeader()}}
		if got := certHeaders(up.last(t).header); sprintHeader(got) != sprintHeader(want) {
			t.Errorf("the upstream got %v, want %v", got, want)
		}
	})
}
