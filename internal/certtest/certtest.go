// Package certtest makes certificates for tests: client certificates for
// certificate-bound tokens (RFC 8705) and the headers a gateway that
// terminated TLS sends for them, computed here rather than by the code under
// test; and certificate authorities with the server and client certificates
// they sign, for tests of TLS listeners and clients.
package certtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"
)

// Client is a self-signed client certificate made for one test.
type Client struct {
	Cert *x509.Certificate
	TLS  tls.Certificate // for a tls.Config's Certificates
}

// NewClient returns a fresh ECDSA P-256 client certificate named cn, valid
// for an hour either side of now.
func NewClient(tb testing.TB, cn string) Client {
	tb.Helper()
	cert, der, key := sign(tb, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, nil, nil)
	return Client{Cert: cert, TLS: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}
}

// X5T is the cnf.x5t#S256 of c (RFC 8705 §3.1).
func (c Client) X5T() string {
	sum := sha256.Sum256(c.Cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ClientCertHeader is RFC 9440's Client-Cert for c.
func (c Client) ClientCertHeader() string {
	return ":" + base64.StdEncoding.EncodeToString(c.Cert.Raw) + ":"
}

// XFCCHash is Envoy's X-Forwarded-Client-Cert for c with Hash=, among other
// members (a quoted Subject with a comma).
func (c Client) XFCCHash() string {
	sum := sha256.Sum256(c.Cert.Raw)
	return `By=spiffe://cluster.local/ns/a/sa/b;Hash=` + hex.EncodeToString(sum[:]) + `;Subject="CN=x,O=y";URI=`
}

// XFCCCert is Envoy's X-Forwarded-Client-Cert for c with Cert= (URL-encoded
// PEM).
func (c Client) XFCCCert() string {
	p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})
	return `By=spiffe://x;Cert="` + url.PathEscape(string(p)) + `"`
}

// CA is a certificate authority made for one test.
type CA struct {
	Cert *x509.Certificate
	PEM  []byte // the certificate
	Pool *x509.CertPool
	key  *ecdsa.PrivateKey
}

// NewCA returns a fresh ECDSA P-256 certificate authority named name,
// valid from an hour ago for a day.
func NewCA(tb testing.TB, name string) *CA {
	tb.Helper()
	cert, der, key := sign(tb, &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil, nil)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, PEM: PEM("CERTIFICATE", der), Pool: pool, key: key}
}

// Leaf is a certificate a CA signed and its key, in PEM as a
// kubernetes.io/tls Secret holds them.
type Leaf struct {
	Cert            *x509.Certificate
	CertPEM, KeyPEM []byte // the key in PKCS #8
	TLS             tls.Certificate
}

// Issue makes a server certificate named cn for 127.0.0.1 and localhost,
// or with client a client certificate, valid from an hour ago for 12 hours.
func (ca *CA) Issue(tb testing.TB, cn string, client bool) *Leaf {
	tb.Helper()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    time.Now().Add(12 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.DNSNames, tmpl.IPAddresses = nil, nil
	}
	cert, der, key := sign(tb, tmpl, ca.Cert, ca.key)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	l := &Leaf{Cert: cert, CertPEM: PEM("CERTIFICATE", der), KeyPEM: PEM("PRIVATE KEY", kder)}
	if l.TLS, err = tls.X509KeyPair(l.CertPEM, l.KeyPEM); err != nil {
		tb.Fatal(err)
	}
	return l
}

// PEM encodes der as one PEM block of type typ.
func PEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// sign makes the certificate of tmpl with a fresh P-256 key and a random
// serial number (tests tell certificates apart by it), signed by parent's
// key, or by its own with parent nil.
func sign(tb testing.TB, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, []byte, *ecdsa.PrivateKey) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120)); err != nil {
		tb.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert, der, key
}
