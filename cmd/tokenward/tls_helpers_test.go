package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenward/tokenward/internal/certtest"
)

// testCA is a certificate authority made in the test (certtest.CA).
type testCA struct {
	ca   *certtest.CA
	cert *x509.Certificate
	pem  []byte
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	ca := certtest.NewCA(t, name)
	return &testCA{ca: ca, cert: ca.Cert, pem: ca.PEM, pool: ca.Pool}
}

// leafPair is a certificate and its key, in PEM, as a kubernetes.io/tls
// Secret holds them.
type leafPair struct {
	certPEM, keyPEM []byte
	cert            *x509.Certificate
	tls             tls.Certificate
}

// issue makes a server certificate for 127.0.0.1 and localhost, or a client
// certificate, signed by ca.
func (ca *testCA) issue(t *testing.T, cn string, client bool) *leafPair {
	l := ca.ca.Issue(t, cn, client)
	return &leafPair{certPEM: l.CertPEM, keyPEM: l.KeyPEM, cert: l.Cert, tls: l.TLS}
}

// secretMount lays out a directory as the kubelet mounts a Secret: each
// file a link to ..data/file, ..data a link to the version's directory,
// swapped atomically on update.
type secretMount struct {
	t       *testing.T
	dir     string
	version int
}

func newSecretMount(t *testing.T, files map[string][]byte) *secretMount {
	t.Helper()
	m := &secretMount{t: t, dir: t.TempDir()}
	m.update(files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(m.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func (m *secretMount) path(name string) string { return filepath.Join(m.dir, name) }

// update writes a new version's directory and swaps ..data to it.
func (m *secretMount) update(files map[string][]byte) {
	m.t.Helper()
	m.version++
	v := fmt.Sprintf("..2026_12_04_v%d", m.version)
	if err := os.Mkdir(filepath.Join(m.dir, v), 0o700); err != nil {
		m.t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(m.dir, v, name), content, 0o600); err != nil {
			m.t.Fatal(err)
		}
	}
	if err := os.Symlink(v, filepath.Join(m.dir, "..data_tmp")); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(m.dir, "..data_tmp"), filepath.Join(m.dir, "..data")); err != nil {
		m.t.Fatal(err)
	}
}

// tlsClient returns a client that trusts roots and presents cert (nil: no
// certificate), each request on a new connection unless keepAlive. h2
// offers HTTP/2 over ALPN.
func tlsClient(t *testing.T, roots *x509.CertPool, cert *tls.Certificate, keepAlive, h2 bool) *http.Client {
	cfg := &tls.Config{RootCAs: roots}
	if cert != nil {
		// Sent whatever CAs the server names: Go would otherwise keep a
		// certificate the server's CA list does not match to itself.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	tr := &http.Transport{
		Proxy:             nil,
		TLSClientConfig:   cfg,
		DisableKeepAlives: !keepAlive,
		ForceAttemptHTTP2: h2,
		MaxConnsPerHost:   1, // a keep-alive client holds one connection
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitTimeout}
}

// serveTLSBinary starts the binary with TLS on its listener (the files are
// in env) and returns it with an https URL and a client trusting roots.
func serveTLSBinary(t *testing.T, env map[string]string, roots *x509.CertPool) *server {
	t.Helper()
	s := serveBinary(t, env)
	mode := env["TOKENWARD_MODE"]
	if mode == "" {
		mode = modeProxy
	}
	if l := s.stderr.waitLog(t, "listening", "server", mode); l["tls"] != true {
		t.Fatalf("listening line without tls: true: %v", l)
	}
	s.url = "https://" + s.url[len("http://"):]
	s.client = tlsClient(t, roots, nil, true, false)
	return s
}

// servedSerial connects anew and returns the serial number of the server's
// certificate, or the error of the request.
func servedSerial(t *testing.T, s *server, roots *x509.CertPool, path string, edit func(*http.Request)) (*big.Int, int, error) {
	t.Helper()
	req, err := http.NewRequest("GET", s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(req)
	}
	resp, err := tlsClient(t, roots, nil, false, false).Do(req)
	if err != nil {
		return nil, 0, err
	}
	resp.Body.Close()
	return resp.TLS.PeerCertificates[0].SerialNumber, resp.StatusCode, nil
}

// waitServed polls new connections until the server presents want.
func waitServed(t *testing.T, s *server, roots *x509.CertPool, want *x509.Certificate) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		got, code, err := servedSerial(t, s, roots, "/status", nil)
		if err == nil && got.Cmp(want.SerialNumber) == 0 && code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("new connections get serial %v (status %d, %v), want %v within %s", got, code, err, want.SerialNumber, waitTimeout)
		}
		time.Sleep(5 * time.Millisecond) // polling, with a deadline
	}
}
