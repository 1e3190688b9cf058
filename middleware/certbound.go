package middleware

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/tokenward/tokenward/internal/headername"
)

// This file is the proof of certificate-bound tokens (RFC 8705 §3): which
// client certificate a request presents — its TLS connection's, or the one
// a trusted proxy that terminated TLS names in a header — and whether its
// thumbprint is the token's cnf x5t#S256.

// The headers in which a proxy that terminated TLS passes the client's
// certificate on. Both are read only from a trusted proxy.
const (
	// ClientCertHeader is RFC 9440's Client-Cert: the DER of the
	// certificate as a structured-field byte sequence, ":base64:".
	ClientCertHeader = "Client-Cert"
	// XFCCHeader is Envoy's X-Forwarded-Client-Cert: one element per hop,
	// comma-separated; the last one's Hash= (hex SHA-256 of the DER) or
	// Cert= (URL-encoded PEM) is read.
	XFCCHeader = "X-Forwarded-Client-Cert"
)

// maxCertHeaderBytes bounds what is parsed of a certificate header: a
// certificate chain in PEM is a few KiB; the request's header limit is 64 KiB.
const maxCertHeaderBytes = 32 << 10

// certHeader reports whether name is a certificate header in any spelling
// (case, "_" for "-"), which a request from an untrusted peer must not carry
// on: Client-Cert, Client-Cert-Chain, X-Forwarded-Client-Cert.
func certHeader(name string) bool {
	return headername.Is(name, certHeaders)
}

var certHeaders = []string{"client-cert", "client-cert-chain", "x-forwarded-client-cert"}

// StripCertHeaders removes from h every spelling of the headers that assert
// a client certificate (Client-Cert, Client-Cert-Chain,
// X-Forwarded-Client-Cert), so that a handler behind cannot read a
// certificate a client asserted itself. The middleware ([New]) calls it for
// requests that do not come from a trusted proxy.
func StripCertHeaders(h http.Header) {
	for k := range h {
		if certHeader(k) {
			delete(h, k)
		}
	}
}

// parseTrustedProxies parses IPs and CIDRs. Every address is refused:
// trusting every peer lets any client assert its own certificate.
func parseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var (
		out  []netip.Prefix
		errs []error
	)
	for _, s := range list {
		s = strings.TrimSpace(s)
		var p netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			p, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(s); err == nil {
				if a.Zone() != "" {
					err = errors.New("zone not allowed")
				} else {
					p = netip.PrefixFrom(a, a.BitLen())
				}
			}
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("tokenward: trusted proxy %q is neither an IP address nor a CIDR", s))
		case p.Bits() == 0:
			errs = append(errs, fmt.Errorf("tokenward: trusted proxy %q trusts every address: any client could assert a certificate", s))
		default:
			p = p.Masked()
			if p.Addr().Is4In6() {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p)
		}
	}
	return out, errors.Join(errs...)
}

// CheckTrustedProxies reports every entry of list that cannot be one of
// [GuardOptions].TrustedProxies, as [NewGuard] would; the binary checks
// TOKENWARD_TRUSTED_PROXIES with it.
func CheckTrustedProxies(list []string) error {
	_, err := parseTrustedProxies(list)
	return err
}

// trusted reports whether addr ("host:port" or a bare host, as
// http.Request.RemoteAddr holds it) is one of the trusted proxies.
func (g *Guard) trusted(addr string) bool {
	if len(g.proxies) == 0 || addr == "" {
		return false
	}
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range g.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Trusted reports whether addr ("host:port" or a host) is one of
// [GuardOptions.TrustedProxies]: a peer whose certificate headers are read.
func (g *Guard) Trusted(addr string) bool { return g.trusted(addr) }

// presented is the SHA-256 of the DER of the certificate a request presents.
// ok is false when it presents none; detail, for the log, says why a
// certificate that was there could not be read.
func (g *Guard) presented(req Request) (sum [sha256.Size]byte, ok bool, detail string) {
	if !g.trusted(req.Peer.Addr) {
		if c := req.Peer.Certificate; c != nil {
			return sha256.Sum256(c.Raw), true, ""
		}
		return sum, false, ""
	}
	// A trusted proxy's own TLS certificate, if it has one, is the
	// proxy's: only its headers speak for the client.
	cc, hasCC := req.Header[ClientCertHeader]
	xf, hasXF := req.Header[XFCCHeader]
	var err error
	switch {
	case !hasCC && !hasXF:
		return sum, false, ""
	case hasCC:
		sum, err = ParseClientCert(cc)
		if err == nil && hasXF {
			// Both: they must name the same certificate.
			var other [sha256.Size]byte
			if other, err = ParseXFCC(xf); err == nil && other != sum {
				err = errors.New("Client-Cert and X-Forwarded-Client-Cert name different certificates")
			}
		}
	default:
		sum, err = ParseXFCC(xf)
	}
	if err != nil {
		return sum, false, "certificate header from trusted proxy " + req.Peer.Addr + " not usable: " + err.Error()
	}
	return sum, true, ""
}

// confirm checks the certificate binding of a bound token (c is its cnf)
// against the request: a client certificate with the token's x5t#S256. It
// runs on every request, cache hits included: the binding is the
// request's, not the token's. A cnf.jkt binding is checked by checkProof,
// after this; Check has refused a cnf.jkt token without the DPoP scheme.
func (g *Guard) confirm(req Request, c *Confirmation) *Error {
	switch {
	case c.Unsupported || c.CertThumbprint == "" && c.KeyThumbprint == "":
		return &Error{Reason: ReasonUnsupportedBinding, Detail: "cnf has neither x5t#S256 nor jkt, or a member other than those"}
	case c.CertThumbprint == "":
		return nil
	}
	want, err := base64.RawURLEncoding.Strict().DecodeString(c.CertThumbprint)
	if err != nil || len(want) != sha256.Size {
		return &Error{Reason: ReasonCertificateMismatch, Detail: "cnf.x5t#S256 is not the base64url of a SHA-256 thumbprint"}
	}
	got, ok, detail := g.presented(req)
	if !ok {
		return &Error{Reason: ReasonNoCertificate, Detail: detail}
	}
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return &Error{Reason: ReasonCertificateMismatch,
			Detail: "client certificate thumbprint " + base64.RawURLEncoding.EncodeToString(got[:])}
	}
	return nil
}

// CertThumbprint is the x5t#S256 of a certificate's DER (RFC 8705 §3.1):
// base64url without padding of its SHA-256, as the cnf claim holds it.
func CertThumbprint(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ParseClientCert reads RFC 9440's Client-Cert field (its lines, as
// http.Header holds them) and returns the SHA-256 of the certificate's DER.
// The field must be one structured-field byte sequence (RFC 8941 §3.3.5):
// ":base64:", standard alphabet, padding allowed, optional surrounding
// spaces; parameters, lists and repeated lines are refused.
func ParseClientCert(lines []string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if len(lines) != 1 {
		return sum, errors.New("Client-Cert must be one field line")
	}
	v := strings.Trim(lines[0], " \t")
	if len(v) > maxCertHeaderBytes {
		return sum, errors.New("Client-Cert too large")
	}
	if len(v) < 2 || v[0] != ':' || v[len(v)-1] != ':' || strings.IndexByte(v[1:len(v)-1], ':') >= 0 {
		return sum, errors.New("Client-Cert is not a byte sequence")
	}
	b64 := v[1 : len(v)-1]
	// RFC 8941 §3.3.5: parsers may accept unpadded input; tokenward does,
	// as Go's encoders and some gateways leave padding out.
	enc := base64.StdEncoding
	if len(b64)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	der, err := enc.Strict().DecodeString(b64)
	if err != nil || len(der) == 0 {
		return sum, errors.New("Client-Cert is not valid base64")
	}
	return sha256.Sum256(der), nil
}

// ParseXFCC reads Envoy's X-Forwarded-Client-Cert field (its lines, as
// http.Header holds them) and returns the SHA-256 of the certificate's DER
// named by its last element — the one the proxy in front of tokenward
// added about its own client. The element's Hash= (hex SHA-256 of the DER)
// or Cert= (URL-encoded PEM) is read; when both are present they must
// agree. Values may be quoted ("…", with \" and \\ escapes).
func ParseXFCC(lines []string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	total := 0
	for _, l := range lines {
		total += len(l) + 1
	}
	if total > maxCertHeaderBytes {
		return sum, errors.New("X-Forwarded-Client-Cert too large")
	}
	elems, err := xfccElements(strings.Join(lines, ","))
	if err != nil {
		return sum, err
	}
	if len(elems) == 0 {
		return sum, errors.New("X-Forwarded-Client-Cert is empty")
	}
	var hash, cert string
	var hasHash, hasCert bool
	for _, kv := range elems[len(elems)-1] {
		switch strings.ToLower(kv[0]) {
		case "hash":
			if hasHash {
				return sum, errors.New("X-Forwarded-Client-Cert element has two Hash keys")
			}
			hash, hasHash = kv[1], true
		case "cert":
			if hasCert {
				return sum, errors.New("X-Forwarded-Client-Cert element has two Cert keys")
			}
			cert, hasCert = kv[1], true
		}
	}
	if !hasHash && !hasCert {
		return sum, errors.New("X-Forwarded-Client-Cert's last element has neither Hash nor Cert")
	}
	if hasHash {
		b, err := hex.DecodeString(hash)
		if err != nil || len(b) != sha256.Size {
			return sum, errors.New("X-Forwarded-Client-Cert Hash is not a hex SHA-256")
		}
		copy(sum[:], b)
	}
	if hasCert {
		p, err := url.PathUnescape(cert) // not QueryUnescape: "+" is base64, not a space
		if err != nil {
			return sum, errors.New("X-Forwarded-Client-Cert Cert is not URL-encoded")
		}
		block, rest := pem.Decode([]byte(p))
		if block == nil || block.Type != "CERTIFICATE" || len(block.Bytes) == 0 || strings.TrimSpace(string(rest)) != "" {
			return sum, errors.New("X-Forwarded-Client-Cert Cert is not one PEM certificate")
		}
		certSum := sha256.Sum256(block.Bytes)
		if hasHash && certSum != sum {
			return sum, errors.New("X-Forwarded-Client-Cert Hash and Cert disagree")
		}
		sum = certSum
	}
	return sum, nil
}

// xfccElements splits an XFCC value into elements (",") of key=value pairs
// (";"), honouring quoted values. At most maxXFCCElements elements.
func xfccElements(v string) ([][][2]string, error) {
	var (
		elems [][][2]string
		cur   [][2]string
	)
	i := 0
	for {
		// One key=value pair.
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
		eq := strings.IndexByte(v[i:], '=')
		if eq <= 0 {
			return nil, errors.New("X-Forwarded-Client-Cert is not a list of key=value pairs")
		}
		key := v[i : i+eq]
		if strings.ContainsAny(key, ",;\" \t") {
			return nil, errors.New("X-Forwarded-Client-Cert has a malformed key")
		}
		i += eq + 1
		var val string
		if i < len(v) && v[i] == '"' {
			var b strings.Builder
			j := i + 1
			for ; j < len(v) && v[j] != '"'; j++ {
				if v[j] == '\\' && j+1 < len(v) {
					j++
				}
				b.WriteByte(v[j])
			}
			if j >= len(v) {
				return nil, errors.New("X-Forwarded-Client-Cert has an unterminated quoted value")
			}
			val, i = b.String(), j+1
		} else {
			j := i
			for j < len(v) && v[j] != ';' && v[j] != ',' {
				j++
			}
			if strings.ContainsAny(v[i:j], "\" ") {
				return nil, errors.New("X-Forwarded-Client-Cert has a malformed value")
			}
			val, i = v[i:j], j
		}
		cur = append(cur, [2]string{key, val})
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
		switch {
		case i == len(v):
			return append(elems, cur), nil
		case v[i] == ';':
			i++
		case v[i] == ',':
			elems = append(elems, cur)
			if len(elems) == maxXFCCElements {
				return nil, errors.New("X-Forwarded-Client-Cert has too many elements")
			}
			cur = nil
			i++
		default:
			return nil, errors.New("X-Forwarded-Client-Cert is malformed")
		}
	}
}

// maxXFCCElements bounds the hops of one XFCC value.
const maxXFCCElements = 64
