package jwkstest

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

const (
	userInfoPath      = "userinfo"
	introspectionPath = "oauth/introspect"
)

// opaqueState is what the issuer keeps for its opaque tokens and its
// introspection client.
type opaqueState struct {
	// mu guards tokens, clientID, clientSecret and clientSet.
	mu           sync.Mutex
	tokens       map[string]*opaqueToken // by the token itself: this is a test issuer
	clientID     string
	clientSecret string
	clientSet    bool
}

type opaqueToken struct {
	claims  map[string]any // never modified after MintOpaque
	revoked bool
}

// tokenOnly are the claims that describe a token rather than its user: a
// /userinfo profile leaves them out.
var tokenOnly = []string{"iss", "aud", "exp", "nbf", "iat", "jti", "scope", "scp", "permissions", "client_id", "azp", "active", "token_type"}

// MintOpaque returns a new opaque access token: 32 random bytes, base64url,
// that means nothing by itself. The issuer remembers claims with it: its
// introspection endpoint answers them with "active": true, and its /userinfo
// endpoint answers them without the token's own claims (iss, aud, exp, scope
// ...) as the user's profile, until the token expires (its "exp", by
// [Options.Now]) or is revoked ([Issuer.RevokeOpaque]). Start from
// [Issuer.Claims] for a valid claim set. claims is copied (one level deep).
func (i *Issuer) MintOpaque(claims map[string]any) string {
	b := make([]byte, 32)
	rand.Read(b) // never returns an error (crypto/rand, Go 1.24+)
	token := base64.RawURLEncoding.EncodeToString(b)
	i.opaque.mu.Lock()
	defer i.opaque.mu.Unlock()
	if i.opaque.tokens == nil {
		i.opaque.tokens = make(map[string]*opaqueToken)
	}
	i.opaque.tokens[token] = &opaqueToken{claims: maps.Clone(claims)}
	return token
}

// RevokeOpaque makes an opaque token from [Issuer.MintOpaque] inactive: its
// introspection answer becomes {"active": false} and /userinfo refuses it.
// It reports whether the token was known.
func (i *Issuer) RevokeOpaque(token string) bool {
	i.opaque.mu.Lock()
	defer i.opaque.mu.Unlock()
	t, ok := i.opaque.tokens[token]
	if ok {
		t.revoked = true
	}
	return ok
}

// SetIntrospectionClient sets the only client the introspection endpoint
// answers: it must authenticate with client_secret_basic (RFC 6749 §2.3.1)
// as id and secret. Until it is called, every introspection request is
// refused with 401 invalid_client, as RFC 7662 requires the caller to
// authenticate.
func (i *Issuer) SetIntrospectionClient(id, secret string) {
	i.opaque.mu.Lock()
	defer i.opaque.mu.Unlock()
	i.opaque.clientID, i.opaque.clientSecret, i.opaque.clientSet = id, secret, true
}

// UserInfoURL returns the URL of the /userinfo endpoint, URL()+"userinfo",
// listed in discovery as "userinfo_endpoint".
func (i *Issuer) UserInfoURL() string { return i.url + userInfoPath }

// IntrospectionURL returns the URL of the RFC 7662 introspection endpoint,
// URL()+"oauth/introspect", listed in discovery as "introspection_endpoint".
func (i *Issuer) IntrospectionURL() string { return i.url + introspectionPath }

// UserInfoRequests returns how many /userinfo requests have arrived, counted
// as by [Issuer.JWKSRequests].
func (i *Issuer) UserInfoRequests() int64 { return i.requests(endpointUserInfo) }

// IntrospectionRequests returns how many introspection requests have
// arrived, counted as by [Issuer.JWKSRequests]: refused ones too.
func (i *Issuer) IntrospectionRequests() int64 { return i.requests(endpointIntrospection) }

// WaitUserInfoRequests is [Issuer.WaitJWKSRequests] for
// [Issuer.UserInfoRequests].
func (i *Issuer) WaitUserInfoRequests(ctx context.Context, n int64) error {
	return i.waitRequests(ctx, endpointUserInfo, n)
}

// WaitIntrospectionRequests is [Issuer.WaitJWKSRequests] for
// [Issuer.IntrospectionRequests].
func (i *Issuer) WaitIntrospectionRequests(ctx context.Context, n int64) error {
	return i.waitRequests(ctx, endpointIntrospection, n)
}

// serveUserInfo answers GET or POST /userinfo (OpenID Connect Core §5.3)
// with the profile of the bearer token's user: 200 for an active opaque
// token or a valid JWT of this issuer, else 401 with a challenge.
func (i *Issuer) serveUserInfo(w http.ResponseWriter, r *http.Request) {
	if i.answerGarbage(w) {
		return
	}
	token, ok := bearer(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="jwkstest"`)
		http.Error(w, "no bearer token", http.StatusUnauthorized)
		return
	}
	claims, ok := i.lookup(token)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="jwkstest", error="invalid_token", error_description="token not active"`)
		http.Error(w, "invalid token", http.StatusUnauthorized)
		return
	}
	profile := maps.Clone(claims)
	for _, name := range tokenOnly {
		delete(profile, name)
	}
	writeJSON(w, profile)
}

// serveIntrospection answers POST /oauth/introspect (RFC 7662 §2): the
// client authenticates with client_secret_basic, the token is the form
// parameter "token"; the answer is the token's claims with "active": true, or
// {"active": false} for a token this issuer does not vouch for.
func (i *Issuer) serveIntrospection(w http.ResponseWriter, r *http.Request) {
	if i.answerGarbage(w) {
		return
	}
	if !i.clientAuthenticated(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="jwkstest"`)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"invalid_client"}`))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || r.PostForm.Get("token") == "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"invalid_request"}`))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	claims, ok := i.lookup(r.PostForm.Get("token"))
	if !ok {
		writeJSON(w, map[string]any{"active": false})
		return
	}
	answer := maps.Clone(claims)
	answer["active"] = true
	writeJSON(w, answer)
}

// answerGarbage answers 200 with an HTML page under SetGarbage.
func (i *Issuer) answerGarbage(w http.ResponseWriter) bool {
	i.mu.Lock()
	garbage := i.garbage
	i.mu.Unlock()
	if garbage {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(garbageBody))
	}
	return garbage
}

// clientAuthenticated checks client_secret_basic: the client ID and secret
// are form-urlencoded, then sent as HTTP Basic credentials (RFC 6749 §2.3.1).
func (i *Issuer) clientAuthenticated(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	id, err1 := url.QueryUnescape(user)
	secret, err2 := url.QueryUnescape(pass)
	if err1 != nil || err2 != nil {
		return false
	}
	i.opaque.mu.Lock()
	wantID, wantSecret, set := i.opaque.clientID, i.opaque.clientSecret, i.opaque.clientSet
	i.opaque.mu.Unlock()
	idOK := subtle.ConstantTimeCompare([]byte(id), []byte(wantID))
	secretOK := subtle.ConstantTimeCompare([]byte(secret), []byte(wantSecret))
	return set && idOK&secretOK == 1
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	values := r.Header.Values("Authorization")
	if len(values) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	token = strings.TrimSpace(token)
	return token, ok && strings.EqualFold(scheme, "Bearer") && token != ""
}

// lookup returns the claims of a token the issuer vouches for now: an opaque
// token it minted, not revoked and not expired, or a JWT signed by one of its
// published keys, naming it as issuer and not expired. The claims must not
// be modified.
func (i *Issuer) lookup(token string) (map[string]any, bool) {
	var claims map[string]any
	if strings.Count(token, ".") == 2 {
		c, err := i.verifyJWT(token)
		if err != nil {
			return nil, false
		}
		claims = c
	} else {
		i.opaque.mu.Lock()
		t, ok := i.opaque.tokens[token]
		i.opaque.mu.Unlock()
		if !ok || t.revoked {
			return nil, false
		}
		claims = t.claims
	}
	if exp, ok := unixSeconds(claims["exp"]); ok && !i.now().Before(time.Unix(exp, 0)) {
		return nil, false
	}
	return claims, true
}

// unixSeconds reads a NumericDate as Claims and JSON decoding leave it.
func unixSeconds(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case float64:
		if math.IsNaN(n) || math.IsInf(n, 0) {
			return 0, false
		}
		return int64(n), true
	case json.Number:
		f, err := n.Float64()
		return int64(f), err == nil
	}
	return 0, false
}

// verifyJWT checks that token is a JWT signed by one of the issuer's
// published keys, for its own algorithm, and naming this issuer; it returns
// the claims. Expiry is the caller's to check.
func (i *Issuer) verifyJWT(token string) (map[string]any, error) {
	enc := base64.RawURLEncoding
	parts := strings.Split(token, ".")
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	hj, err := enc.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hj, &header) != nil {
		return nil, errors.New("bad header")
	}
	i.mu.Lock()
	var key *Key
	if n := i.indexLocked(header.Kid); n >= 0 {
		key = i.keys[n].key
	}
	i.mu.Unlock()
	if key == nil || key.Algorithm != header.Alg {
		return nil, errors.New("unknown key")
	}
	sig, err := enc.DecodeString(parts[2])
	if err != nil {
		return nil, errors.New("bad signature encoding")
	}
	if !verifySignature(key, []byte(parts[0]+"."+parts[1]), sig) {
		return nil, errors.New("bad signature")
	}
	cj, err := enc.DecodeString(parts[1])
	if err != nil {
		return nil, errors.New("bad claims encoding")
	}
	var claims map[string]any
	if err := json.Unmarshal(cj, &claims); err != nil {
		return nil, errors.New("bad claims")
	}
	if claims["iss"] != i.url {
		return nil, errors.New("another issuer")
	}
	return claims, nil
}

// verifySignature verifies sig over input with k's public key, as RFC 7518
// says for k's algorithm.
func verifySignature(k *Key, input, sig []byte) bool {
	a, err := k.check()
	if err != nil {
		return false
	}
	var digest []byte
	if a.hash != 0 {
		h := a.hash.New()
		h.Write(input)
		digest = h.Sum(nil)
	}
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		if a.family == familyPSS {
			return rsa.VerifyPSS(pub, a.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: a.hash}) == nil
		}
		return rsa.VerifyPKCS1v15(pub, a.hash, digest, sig) == nil
	case *ecdsa.PublicKey:
		if len(sig) != 2*a.size {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:a.size]), new(big.Int).SetBytes(sig[a.size:])
		return ecdsa.Verify(pub, digest, r, s)
	case ed25519.PublicKey:
		return ed25519.Verify(pub, input, sig)
	}
	return false
}
