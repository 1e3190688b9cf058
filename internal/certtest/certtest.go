// Package certtest makes client certificates for tests of certificate-bound
// tokens (RFC 8705), and the headers a gateway that terminated TLS sends for
// them, computed here rather than by the code under test.
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
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
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
