package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/internal/nginxtest"
)

// testCert makes a self-signed client certificate and returns its DER.
func testCert(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestCertificateBoundE2E: the binary, in proxy and forward-auth mode,
// accepts a certificate-bound token only with the certificate a trusted
// proxy names (RFC 9440 Client-Cert, Envoy's XFCC with Hash= or Cert=);
// from an untrusted address the same headers count for nothing and never
// reach the upstream. Refusals are logged and counted with their reason.
func TestCertificateBoundE2E(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	alice, mallory := testCert(t, "alice"), testCert(t, "mallory")
	sum := sha256.Sum256(alice)
	bound := mint(t, iss, map[string]any{"scope": "read:contacts", "cnf": map[string]any{"x5t#S256": base64.RawURLEncoding.EncodeToString(sum[:])}})
	plain := mint(t, iss, map[string]any{"scope": "read:contacts"})
	clientCert := func(der []byte) http.Header {
		return http.Header{"Client-Cert": {":" + base64.StdEncoding.EncodeToString(der) + ":"}}
	}
	xfccHash := func(der []byte) http.Header {
		s := sha256.Sum256(der)
		return http.Header{"X-Forwarded-Client-Cert": {"By=spiffe://x;Hash=" + hex.EncodeToString(s[:])}}
	}
	xfccCert := func(der []byte) http.Header {
		p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		return http.Header{"X-Forwarded-Client-Cert": {`Cert="` + url.PathEscape(string(p)) + `"`}}
	}
	up := echoUpstream(t)
	for _, mode := range []string{"proxy", "forward-auth"} {
		for _, trusted := range []bool{true, false} {
			name := mode + "/untrusted"
			proxies := "192.0.2.0/24,2001:db8::1"
			if trusted {
				name, proxies = mode+"/trusted", "10.0.0.0/8,127.0.0.1,::1"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				srv := serveBinary(t, map[string]string{
					"TOKENWARD_MODE":            mode,
					"TOKENWARD_UPSTREAM":        up.URL,
					"TOKENWARD_ISSUERS":         iss.URL(),
					"TOKENWARD_AUDIENCES":       audience,
					"TOKENWARD_TRUSTED_PROXIES": proxies,
				})
				ok := func(want int) int {
					if trusted {
						return want
					}
					return http.StatusUnauthorized
				}
				for _, tc := range []struct {
					name   string
					token  string
					header http.Header
					status int
					reason string // logged and counted
				}{
					{"Client-Cert", bound, clientCert(alice), ok(200), "no_certificate"},
					{"XFCC Hash", bound, xfccHash(alice), ok(200), "no_certificate"},
					{"XFCC Cert", bound, xfccCert(alice), ok(200), "no_certificate"},
					{"another certificate", bound, clientCert(mallory), 401, map[bool]string{true: "certificate_mismatch", false: "no_certificate"}[trusted]},
					{"no certificate", bound, nil, 401, "no_certificate"},
					{"bearer token with a certificate header", plain, clientCert(alice), 200, ""},
				} {
					t.Run(tc.name, func(t *testing.T) {
						r := do(t, srv.client, "GET", srv.url+"/api/contacts/7", func(r *http.Request) {
							for k, v := range tc.header {
								r.Header[k] = v
							}
							r.Header.Set("Authorization", "Bearer "+tc.token)
							if mode == "forward-auth" {
								r.Header.Set("X-Original-Method", "GET")
								r.Header.Set("X-Original-URI", "/api/contacts/7")
							}
						})
						if r.status != tc.status {
							t.Fatalf("status %d, want %d; body %s", r.status, tc.status, r.body)
						}
						if r.status == 401 {
							if ch := r.header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="invalid_token"`) {
								t.Errorf("WWW-Authenticate %q, want invalid_token", ch)
							}
							srv.stderr.waitLog(t, "request refused", "reason", tc.reason)
							return
						}
						if mode == "proxy" {
							for k := range r.seen(t).Header {
								if strings.Contains(strings.ToLower(k), "cert") {
									t.Errorf("the upstream received %s", k)
								}
							}
						}
					})
				}
				metrics := do(t, srv.client, "GET", srv.adminURL+"/metrics", nil)
				want := `tokenward_requests_total{outcome="denied",reason="no_certificate"} 1`
				if !trusted {
					want = `tokenward_requests_total{outcome="denied",reason="no_certificate"} 5`
				}
				if !strings.Contains(string(metrics.body), want) {
					t.Errorf("metrics lack %s", want)
				}
			})
		}
	}
}

// TestTrustedProxiesConfig: a bad TOKENWARD_TRUSTED_PROXIES stops the start
// with every bad entry named.
func TestTrustedProxiesConfig(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	p := start(t, map[string]string{
		"TOKENWARD_UPSTREAM":        "http://127.0.0.1:1",
		"TOKENWARD_ISSUERS":         iss.URL(),
		"TOKENWARD_AUDIENCES":       audience,
		"TOKENWARD_TRUSTED_PROXIES": "10.0.0.1,proxy.internal,0.0.0.0/0",
		"TOKENWARD_LISTEN_ADDR":     "127.0.0.1:0",
		"TOKENWARD_ADMIN_ADDR":      "127.0.0.1:0",
	}, nil)
	if code := p.exit(t); code != 2 {
		t.Fatalf("exit status %d, want 2", code)
	}
	out := p.stderr.String()
	for _, want := range []string{`TOKENWARD_TRUSTED_PROXIES: trusted proxy "proxy.internal"`, `TOKENWARD_TRUSTED_PROXIES: trusted proxy "0.0.0.0/0" trusts every address`} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}
}

// TestForwardClientCertE2E: with TOKENWARD_FORWARD_CLIENT_CERT the upstream
// gets the trusted proxy's certificate header, and only that one.
func TestForwardClientCertE2E(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	der := testCert(t, "alice")
	sum := sha256.Sum256(der)
	bound := mint(t, iss, map[string]any{"cnf": map[string]any{"x5t#S256": base64.RawURLEncoding.EncodeToString(sum[:])}})
	up := echoUpstream(t)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_UPSTREAM":            up.URL,
		"TOKENWARD_ISSUERS":             iss.URL(),
		"TOKENWARD_AUDIENCES":           audience,
		"TOKENWARD_TRUSTED_PROXIES":     "127.0.0.1,::1",
		"TOKENWARD_FORWARD_CLIENT_CERT": "true",
	})
	cc := ":" + base64.StdEncoding.EncodeToString(der) + ":"
	r := do(t, srv.client, "GET", srv.url+"/api/contacts/7", func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+bound)
		r.Header.Set("Client-Cert", cc)
		r.Header["Client_cert"] = []string{"spoofed"}
	})
	if r.status != 200 {
		t.Fatalf("status %d; body %s", r.status, r.body)
	}
	h := r.seen(t).Header
	if got := h.Get("Client-Cert"); got != cc {
		t.Errorf("the upstream got Client-Cert %q, want the trusted proxy's", got)
	}
	if _, ok := h["Client_cert"]; ok {
		t.Error("the upstream got the client's Client_cert")
	}
}

// TestCertificateBoundNGINXCurl: curl --cert/--key (a TLS client we did not
// write) through the README's NGINX recipe (a real NGINX terminating TLS and
// passing $ssl_client_escaped_cert on) to the binary in proxy mode, which
// trusts NGINX's address.
func TestCertificateBoundNGINXCurl(t *testing.T) {
	t.Parallel()
	bin := nginxtest.Require(t)
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("curl is not on PATH; CI must install it (apt-get install -y curl)")
		}
		t.Skip("curl is not on PATH (apt-get install -y curl)")
	}
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// issue writes a certificate for cn the CA signs, and its key, as
	// name.pem and name-key.pem; it returns the certificate's DER.
	issue := func(name, cn string, usage x509.ExtKeyUsage) []byte {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{cn},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
		write(name+".pem", "CERTIFICATE", der)
		write(name+"-key.pem", "PRIVATE KEY", keyDER)
		return der
	}
	write("client-ca.pem", "CERTIFICATE", caDER)
	issue("server", "localhost", x509.ExtKeyUsageServerAuth)
	alice := issue("alice", "alice", x509.ExtKeyUsageClientAuth)
	issue("mallory", "mallory", x509.ExtKeyUsageClientAuth)

	iss := newIssuer(t)
	sum := sha256.Sum256(alice)
	bound := mint(t, iss, map[string]any{"cnf": map[string]any{"x5t#S256": base64.RawURLEncoding.EncodeToString(sum[:])}})
	up := echoUpstream(t)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_UPSTREAM":        up.URL,
		"TOKENWARD_ISSUERS":         iss.URL(),
		"TOKENWARD_AUDIENCES":       audience,
		"TOKENWARD_TRUSTED_PROXIES": "127.0.0.1",
	})
	conf := strings.ReplaceAll(readRepoFile(t, "proxy/testdata/nginx-client-cert.conf"), "/etc/nginx/tls/", dir+"/")
	ngx := nginxtest.Start(t, bin, conf, nginxtest.Vars{Tokenward: strings.TrimPrefix(srv.url, "http://")})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(ngx.URL, "http://"))
	for _, tc := range []struct {
		cert   string // "" for none
		status string
	}{{"alice", "200"}, {"mallory", "401"}, {"", "401"}} {
		args := []string{"-sS", "-w", "\n%{http_code}", "--cacert", filepath.Join(dir, "client-ca.pem"),
			"--resolve", "localhost:" + port + ":127.0.0.1", "-H", "Authorization: Bearer " + bound,
			"-H", "Client-Cert: :" + base64.StdEncoding.EncodeToString(alice) + ":"} // asserted: must count for nothing
		if tc.cert != "" {
			args = append(args, "--cert", filepath.Join(dir, tc.cert+".pem"), "--key", filepath.Join(dir, tc.cert+"-key.pem"))
		}
		out, err := exec.Command(curl, append(args, "https://localhost:"+port+"/api/contacts/7")...).CombinedOutput()
		body, status := "", string(out)
		if i := strings.LastIndexByte(string(out), '\n'); i >= 0 {
			body, status = string(out[:i]), string(out[i+1:])
		}
		if err != nil || status != tc.status {
			t.Errorf("curl with certificate %q: %q (%v), want status %s", tc.cert, out, err, tc.status)
			continue
		}
		if status == "200" {
			s := response{body: []byte(body)}.seen(t)
			for k := range s.Header {
				if strings.Contains(strings.ToLower(k), "cert") {
					t.Errorf("the upstream got %s", k)
				}
			}
		} else {
			srv.stderr.waitLog(t, "request refused", "reason", map[string]string{"mallory": "certificate_mismatch", "": "no_certificate"}[tc.cert])
		}
	}
}

// TestCertificateBoundTLSCurl: curl --cert/--key straight to the binary's
// TLS listener (TOKENWARD_TLS_CLIENT_AUTH=request): a certificate-bound
// token passes with its certificate only; a bearer token needs none.
func TestCertificateBoundTLSCurl(t *testing.T) {
	t.Parallel()
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("curl is not on PATH; CI must install it (apt-get install -y curl)")
		}
		t.Skip("curl is not on PATH (apt-get install -y curl)")
	}
	serverCA, clientCA := newTestCA(t, "server CA"), newTestCA(t, "client CA")
	serverPair := serverCA.issue(t, "server", false)
	alice, mallory := clientCA.issue(t, "alice", true), clientCA.issue(t, "mallory", true)
	file := func(name string, data []byte) string { return writeFile(t, name, string(data)) }
	iss := newIssuer(t)
	sum := sha256.Sum256(alice.cert.Raw)
	bound := mint(t, iss, map[string]any{"cnf": map[string]any{"x5t#S256": base64.RawURLEncoding.EncodeToString(sum[:])}})
	plain := mint(t, iss, nil)
	up := echoUpstream(t)
	s := serveTLSBinary(t, map[string]string{
		"TOKENWARD_ISSUERS":            iss.URL(),
		"TOKENWARD_AUDIENCES":          audience,
		"TOKENWARD_UPSTREAM":           up.URL,
		"TOKENWARD_TLS_CERT_FILE":      file("tls.crt", serverPair.certPEM),
		"TOKENWARD_TLS_KEY_FILE":       file("tls.key", serverPair.keyPEM),
		"TOKENWARD_TLS_CLIENT_CA_FILE": file("ca.crt", clientCA.pem),
		"TOKENWARD_TLS_CLIENT_AUTH":    "request",
	}, serverCA.pool)
	cacert := file("server-ca.crt", serverCA.pem)
	for _, tc := range []struct {
		name   string
		cert   *leafPair
		token  string
		status string
		reason string
	}{
		{"its certificate", alice, bound, "200", ""},
		{"another certificate", mallory, bound, "401", "certificate_mismatch"},
		{"no certificate", nil, bound, "401", "no_certificate"},
		{"bearer token, no certificate", nil, plain, "200", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"-sS", "--max-time", "20", "--cacert", cacert, "-o", "/dev/null", "-w", "%{http_code}",
				"-H", "Authorization: Bearer " + tc.token}
			if tc.cert != nil {
				args = append(args, "--cert", file(tc.cert.cert.Subject.CommonName+".crt", tc.cert.certPEM),
					"--key", file(tc.cert.cert.Subject.CommonName+".key", tc.cert.keyPEM))
			}
			out, err := exec.Command(curl, append(args, s.url+"/api/contacts/7")...).CombinedOutput()
			if err != nil || string(out) != tc.status {
				t.Fatalf("curl: %q, %v; want %s", out, err, tc.status)
			}
			if tc.reason != "" {
				s.stderr.waitLog(t, "request refused", "reason", tc.reason)
			}
		})
	}
}
