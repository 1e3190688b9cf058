package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testCA is a certificate authority made in the test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	pool *x509.CertPool
}

// nextSerial is a random serial number: the tests tell certificates apart
// by it.
func nextSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err)
	}
	return n
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pem: pemBlock("CERTIFICATE", der), pool: pool}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
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
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(12 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.DNSNames, tmpl.IPAddresses = nil, nil
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := &leafPair{certPEM: pemBlock("CERTIFICATE", der), keyPEM: pemBlock("PRIVATE KEY", kder)}
	if p.cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	if p.tls, err = tls.X509KeyPair(p.certPEM, p.keyPEM); err != nil {
		t.Fatal(err)
	}
	return p
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
