package jwkstest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// ErrClosed is returned by [Issuer.WaitJWKSRequests] and
// [Issuer.WaitDiscoveryRequests] when the issuer is closed before the count
// is reached.
var ErrClosed = errors.New("jwkstest: issuer closed")

// Options configures an [Issuer]. The zero value is what tests usually want:
// an RS256 key and a free port on 127.0.0.1.
type Options struct {
	// Algorithm is the signing algorithm of the first key: "RS256",
	// "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"
	// or "EdDSA". "" means "RS256".
	Algorithm string

	// KeyID is the kid of the first key, for demos that print stable
	// output. "" means a random kid.
	KeyID string

	// Addr is the address to listen on, such as "127.0.0.1:8081"; the host
	// must be a loopback address or "localhost". "" means a free port on
	// 127.0.0.1, the right choice for tests.
	Addr string

	// Now is the clock [Issuer.Claims] reads "iat" and "exp" from. nil means
	// time.Now.
	Now func() time.Time
}

// An Issuer is a test OpenID Connect issuer listening on loopback. It serves
// its discovery document and JWKS, and mints tokens with its signing key.
// All methods are safe for concurrent use, also while it serves.
type Issuer struct {
	url    string
	now    func() time.Time
	srv    *http.Server
	done   chan struct{} // closed by Close: releases answers held by SetDelay
	served chan struct{} // closed when srv.Serve has returned
	once   sync.Once     // runs Close once; later callers wait for it

	// mu guards everything from here to countMu: the published keys and the
	// JWKS made from them, the signing key, the behaviour switches, and
	// closed. inflight.Add is called only under mu with closed false, which
	// orders every Add before the Wait in Close.
	mu           sync.Mutex
	keys         []published // in publication order
	jwks         []byte      // {"keys":[...]} of keys, rebuilt when they change
	signing      *Key        // always one of keys
	down         bool
	garbage      bool
	delay        time.Duration
	delayChanged chan struct{} // closed and replaced by SetDelay, so held answers re-read delay
	jwksBody     []byte
	cacheControl string
	closed       bool
	inflight     sync.WaitGroup // answers being made

	// countMu guards counts and countsDone; countCond (on countMu) is
	// broadcast whenever either changes, which is what the Wait methods
	// sleep on.
	countMu    sync.Mutex
	countCond  sync.Cond
	counts     [numEndpoints]int64
	countsDone bool // the issuer is closed: counts will not change again

	opaque opaqueState // opaque tokens and the introspection client (opaque.go)
}

// published is a key with its public JWK, encoded once.
type published struct {
	key *Key
	jwk jwk
}

// NewIssuer starts an issuer on a free loopback port with one RS256 key. Like
// httptest.NewServer it panics if it cannot start. Call [Issuer.Close] when
// done.
func NewIssuer() *Issuer {
	return NewIssuerWithOptions(Options{})
}

// NewIssuerWithOptions is like [NewIssuer], configured by o. It panics on an
// invalid option or if it cannot start; [Start] returns the error instead.
func NewIssuerWithOptions(o Options) *Issuer {
	i, err := Start(o)
	if err != nil {
		panic(err)
	}
	return i
}

// Start starts an issuer configured by o, reporting every invalid option at
// once. It is [NewIssuerWithOptions] for callers that would rather handle the
// error, such as a demo command listening on a fixed port.
func Start(o Options) (*Issuer, error) {
	alg := cmp.Or(o.Algorithm, "RS256")
	addr := cmp.Or(o.Addr, "127.0.0.1:0")
	var errs []error
	if _, err := lookupAlgorithm(alg); err != nil {
		errs = append(errs, err)
	}
	if err := checkLoopback(addr); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	key, err := NewKey(alg) // before listening: nothing to clean up if it fails
	if err != nil {
		return nil, err
	}
	if o.KeyID != "" {
		key.ID = o.KeyID
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("jwkstest: listening on %s: %w", addr, err)
	}

	i := &Issuer{
		url:          "http://" + ln.Addr().String() + "/",
		now:          o.Now,
		done:         make(chan struct{}),
		served:       make(chan struct{}),
		delayChanged: make(chan struct{}),
	}
	if i.now == nil {
		i.now = time.Now
	}
	i.countCond.L = &i.countMu
	i.srv = &http.Server{Handler: i.routes(), ReadHeaderTimeout: 10 * time.Second}
	if err := i.PublishKey(key); err != nil {
		ln.Close()
		return nil, err
	}
	i.signing = key
	go func() {
		defer close(i.served)
		i.srv.Serve(ln) // returns http.ErrServerClosed once Close is called
	}()
	return i, nil
}

// checkLoopback reports an error unless addr's host is on loopback: the
// issuer speaks plain http and publishes whatever a test tells it to.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("jwkstest: Addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("jwkstest: Addr %q is not a loopback address", addr)
	}
	return nil
}

// Close stops the issuer and waits for its answers in progress, releasing at
// once those held by [Issuer.SetDelay], so it never hangs. Their clients see
// the connection close. Close may be called more than once.
func (i *Issuer) Close() {
	i.once.Do(func() {
		i.mu.Lock()
		i.closed = true
		i.mu.Unlock()

		// Connections first: an answer released below then has nowhere to
		// go, rather than reaching its client as a made-up response.
		i.srv.Close()
		close(i.done)
		i.inflight.Wait()
		<-i.served

		i.countMu.Lock()
		i.countsDone = true
		i.countCond.Broadcast()
		i.countMu.Unlock()
	})
}

// URL returns the issuer identifier, "http://127.0.0.1:PORT/": with a
// trailing slash as Auth0 writes it, equal to the "iss" of minted tokens and
// to the "issuer" of the discovery document.
func (i *Issuer) URL() string { return i.url }

// JWKSURL returns the URL of the JWKS, URL()+".well-known/jwks.json".
func (i *Issuer) JWKSURL() string { return i.url + jwksPath }

// DiscoveryURL returns the URL of the discovery document,
// URL()+".well-known/openid-configuration".
func (i *Issuer) DiscoveryURL() string { return i.url + discoveryPath }

// Claims returns a valid claim set for audience: "iss" URL(), "sub"
// "auth0|test-user", "aud" audience, "iat" now and "exp" an hour from now (as
// Unix seconds, by [Options.Now]). The fields of extra are set over these; a
// nil value deletes a claim.
func (i *Issuer) Claims(audience string, extra map[string]any) map[string]any {
	now := i.now()
	c := map[string]any{
		"iss": i.url,
		"sub": "auth0|test-user",
		"aud": audience,
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	return merge(c, extra)
}

// Mint returns claims signed by the current signing key, with the header
// {"alg": <the key's algorithm>, "typ": "JWT", "kid": <its kid>}.
func (i *Issuer) Mint(claims map[string]any) (string, error) {
	return i.MintWithHeader(nil, claims)
}

// MintWithHeader is like [Issuer.Mint] with header's fields merged over the
// default header; a nil value deletes a field. Tests use it to craft typ
// "at+jwt", a foreign kid, a "jku" header... The signature is made with the
// signing key's own algorithm whatever "alg" says.
func (i *Issuer) MintWithHeader(header, claims map[string]any) (string, error) {
	return i.SigningKey().Sign(header, claims)
}

// SigningKey returns the key that Mint signs with. It must not be modified.
func (i *Issuer) SigningKey() *Key {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.signing
}

// Keys returns the published keys, in the order they appear in the JWKS.
// They must not be modified.
func (i *Issuer) Keys() []*Key {
	i.mu.Lock()
	defer i.mu.Unlock()
	keys := make([]*Key, len(i.keys))
	for n, p := range i.keys {
		keys[n] = p.key
	}
	return keys
}

// AddKey publishes a new key for alg in the JWKS, after the others. The
// signing key does not change: see [Issuer.SetSigningKey].
func (i *Issuer) AddKey(alg string) (*Key, error) {
	k, err := NewKey(alg)
	if err != nil {
		return nil, err
	}
	if err := i.PublishKey(k); err != nil {
		return nil, err
	}
	return k, nil
}

// PublishKey publishes k in the JWKS, after the others; its kid must not be
// published already. It lets two issuers publish the same key, or an issuer
// publish a key made by [NewKey] earlier. k must not be modified afterwards.
func (i *Issuer) PublishKey(k *Key) error {
	j, err := k.publicJWK()
	if err != nil {
		return err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.indexLocked(k.ID) >= 0 {
		return fmt.Errorf("jwkstest: key %q is already published", k.ID)
	}
	i.keys = append(i.keys, published{key: k, jwk: j})
	i.rebuildLocked()
	return nil
}

// SetSigningKey makes the published key kid the one Mint signs with.
func (i *Issuer) SetSigningKey(kid string) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	n := i.indexLocked(kid)
	if n < 0 {
		return fmt.Errorf("jwkstest: key %q is not published", kid)
	}
	i.signing = i.keys[n].key
	return nil
}

// RemoveKey unpublishes the key kid. The signing key cannot be removed:
// choose another one first, or use [Issuer.Rotate].
func (i *Issuer) RemoveKey(kid string) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	n := i.indexLocked(kid)
	if n < 0 {
		return fmt.Errorf("jwkstest: key %q is not published", kid)
	}
	if i.keys[n].key == i.signing {
		return fmt.Errorf("jwkstest: key %q is the signing key", kid)
	}
	i.keys = slices.Delete(i.keys, n, n+1)
	i.rebuildLocked()
	return nil
}

// Rotate publishes a new key for alg, makes it the signing key, and
// unpublishes every other key, as an issuer does after revoking its old key.
// To rotate gracefully instead (new key published before it signs, old key
// kept for a while), use [Issuer.AddKey], [Issuer.SetSigningKey] and
// [Issuer.RemoveKey].
func (i *Issuer) Rotate(alg string) (*Key, error) {
	k, err := NewKey(alg)
	if err != nil {
		return nil, err
	}
	j, err := k.publicJWK()
	if err != nil {
		return nil, err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = []published{{key: k, jwk: j}}
	i.signing = k
	i.rebuildLocked()
	return k, nil
}

func (i *Issuer) indexLocked(kid string) int {
	return slices.IndexFunc(i.keys, func(p published) bool { return p.key.ID == kid })
}

// rebuildLocked re-encodes the JWKS once per change of the key set, so that
// serving it is a copy of bytes taken under mu.
func (i *Issuer) rebuildLocked() {
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: make([]jwk, len(i.keys))}
	for n, p := range i.keys {
		set.Keys[n] = p.jwk
	}
	b, err := json.Marshal(set)
	if err != nil {
		panic("jwkstest: encoding JWKS: " + err.Error()) // strings only: cannot happen
	}
	i.jwks = b
}

// SetDown makes every endpoint (discovery, the JWKS, /userinfo,
// introspection) answer 503 Service Unavailable while down is true, as during
// an outage of the issuer.
func (i *Issuer) SetDown(down bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.down = down
}

// SetDelay makes every answer wait d after its request arrived, as a slow or
// hung issuer does (d <= 0: no wait). It applies to answers already waiting:
// lowering it releases them early. A waiting answer is also abandoned when its
// client goes away or the issuer is closed. What the answer is (SetDown,
// SetGarbage...) is decided after the wait.
func (i *Issuer) SetDelay(d time.Duration) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.delay = max(d, 0)
	close(i.delayChanged)
	i.delayChanged = make(chan struct{})
}

// SetGarbage makes the JWKS, /userinfo and introspection answer 200 OK with
// an HTML error page while garbage is true, as a misconfigured proxy in front
// of an issuer does. It
// takes precedence over [Issuer.SetJWKSBody]; [Issuer.SetDown] takes
// precedence over it.
func (i *Issuer) SetGarbage(garbage bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.garbage = garbage
}

// SetJWKSBody makes the JWKS answer 200 OK with exactly body, as
// application/json, instead of the published keys: an empty set, a huge
// body, a JWK with private members, duplicate kids... nil restores the
// published keys. body is copied.
func (i *Issuer) SetJWKSBody(body []byte) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.jwksBody = bytes.Clone(body) // nil stays nil, empty stays non-nil
}

// SetCacheControl sets the Cache-Control header of the JWKS answers made
// with 200 OK (keys, garbage or SetJWKSBody); "" means none.
func (i *Issuer) SetCacheControl(v string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.cacheControl = v
}

// JWKSRequests returns how many JWKS requests have arrived, whatever their
// answer (503, garbage, held by SetDelay, abandoned). A request counts as soon
// as it arrives, before any delay.
func (i *Issuer) JWKSRequests() int64 { return i.requests(endpointJWKS) }

// DiscoveryRequests returns how many discovery requests have arrived,
// counted as by [Issuer.JWKSRequests].
func (i *Issuer) DiscoveryRequests() int64 { return i.requests(endpointDiscovery) }

// WaitJWKSRequests blocks until [Issuer.JWKSRequests] >= n, and returns nil;
// or until ctx is done, returning ctx.Err(); or until the issuer is closed
// short of n, returning [ErrClosed]. Tests wait on it rather than sleep.
func (i *Issuer) WaitJWKSRequests(ctx context.Context, n int64) error {
	return i.waitRequests(ctx, endpointJWKS, n)
}

// WaitDiscoveryRequests is [Issuer.WaitJWKSRequests] for
// [Issuer.DiscoveryRequests].
func (i *Issuer) WaitDiscoveryRequests(ctx context.Context, n int64) error {
	return i.waitRequests(ctx, endpointDiscovery, n)
}

func (i *Issuer) requests(e endpoint) int64 {
	i.countMu.Lock()
	defer i.countMu.Unlock()
	return i.counts[e]
}

func (i *Issuer) count(e endpoint) {
	i.countMu.Lock()
	defer i.countMu.Unlock()
	i.counts[e]++
	i.countCond.Broadcast()
}

func (i *Issuer) waitRequests(ctx context.Context, e endpoint, n int64) error {
	// A cond cannot select on ctx: wake the waiters when ctx is done. Taking
	// countMu first means the broadcast cannot fall between our check of
	// ctx.Err and Wait.
	stop := context.AfterFunc(ctx, func() {
		i.countMu.Lock()
		defer i.countMu.Unlock()
		i.countCond.Broadcast()
	})
	defer stop()

	i.countMu.Lock()
	defer i.countMu.Unlock()
	for i.counts[e] < n {
		if err := ctx.Err(); err != nil {
			return err
		}
		if i.countsDone {
			return ErrClosed
		}
		i.countCond.Wait()
	}
	return nil
}
