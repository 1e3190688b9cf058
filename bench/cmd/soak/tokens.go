package main

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenward/tokenward/jwks/jwkstest"
)

const (
	api      = "https://api.soak.tokenward.example"
	soakAlg  = "ES256" // minting 200,000 RS256 tokens on 2 cores takes minutes; ES256 seconds
	poolSize = 500     // tokens in each invalid pool
)

// Token classes: the prefix of each token's jti, which the upstream reads.
var (
	validJWTClasses = map[string]bool{"a": true, "b": true}
	invalidClasses  = map[string]bool{
		"exp": true, "aud": true, "sig": true, "kid": true, "rev": true, "rev2": true,
		"made-up opaque": true, "unparsable": true,
	}
)

// pool is a set of tokens of one class.
type pool struct {
	class  string
	tokens []string
	used   []uint32 // bitset: which tokens were sent
}

func (p *pool) mark(i int) { atomic.OrUint32(&p.used[i/32], 1<<(i%32)) }

func (p *pool) distinctUsed() int {
	n := 0
	for i := range p.used {
		for v := atomic.LoadUint32(&p.used[i]); v != 0; v &= v - 1 {
			n++
		}
	}
	return n
}

// tokens are every token the soak sends.
type tokens struct {
	a, b                          *pool // valid: a signed by the issuer's first key, b by the key published at the rotation
	exp, aud, sig, kid, rev, rev2 *pool
	probeA, probeB, probeRev2     string
	probeRules                    string
	opaque                        []string // real opaque tokens, known to the issuer
	key1, key2                    *jwkstest.Key
}

// mintTokens makes n valid tokens (half per key) and the invalid pools, on
// every core.
func mintTokens(iss *jwkstest.Issuer, n int) (*tokens, error) {
	key2, err := jwkstest.NewKey(soakAlg)
	if err != nil {
		return nil, err
	}
	t := &tokens{key1: iss.SigningKey(), key2: key2}
	now := time.Now()
	claims := func(jti string, i int) map[string]any {
		return map[string]any{
			"iss":         iss.URL(),
			"sub":         fmt.Sprintf("auth0|50a4c0ffee%014x", i),
			"aud":         []string{api, iss.URL() + "userinfo"},
			"iat":         now.Unix(),
			"exp":         now.Add(24 * time.Hour).Unix(),
			"azp":         "soak-client",
			"scope":       "openid profile read:contacts",
			"permissions": []string{"read:contacts"},
			"jti":         jti,
		}
	}
	type job struct {
		p    *pool
		mint func(i int) (string, error)
	}
	newPool := func(class string, size int) *pool {
		return &pool{class: class, tokens: make([]string, size), used: make([]uint32, (size+31)/32)}
	}
	sign := func(k *jwkstest.Key, class string, edit func(c map[string]any), header map[string]any) func(int) (string, error) {
		return func(i int) (string, error) {
			c := claims(fmt.Sprintf("%s.%d", class, i), i)
			if edit != nil {
				edit(c)
			}
			var h map[string]any
			if header != nil {
				h = map[string]any{"kid": fmt.Sprintf("soak-unknown-%d", i)}
			}
			return k.Sign(h, c)
		}
	}
	t.a, t.b = newPool("a", n-n/2), newPool("b", n/2)
	t.exp, t.aud, t.sig = newPool("exp", poolSize), newPool("aud", poolSize), newPool("sig", poolSize)
	t.kid, t.rev, t.rev2 = newPool("kid", poolSize), newPool("rev", poolSize), newPool("rev2", poolSize)
	jobs := []job{
		{t.a, sign(t.key1, "a", nil, nil)},
		{t.b, sign(t.key2, "b", nil, nil)},
		{t.exp, sign(t.key1, "exp", func(c map[string]any) {
			c["iat"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		}, nil)},
		{t.aud, sign(t.key1, "aud", func(c map[string]any) { c["aud"] = []string{"https://other.example"} }, nil)},
		{t.sig, func(i int) (string, error) {
			tok, err := sign(t.key1, "sig", nil, nil)(i)
			if err != nil {
				return "", err
			}
			// Change one character well inside the signature (the last
			// ones carry padding bits).
			b := []byte(tok)
			j := len(b) - 20
			if b[j] == 'A' {
				b[j] = 'B'
			} else {
				b[j] = 'A'
			}
			return string(b), nil
		}},
		{t.kid, sign(t.key1, "kid", nil, map[string]any{})},
		{t.rev, sign(t.key1, "rev", nil, nil)},
		{t.rev2, sign(t.key1, "rev2", nil, nil)},
	}
	var errs []error
	var mu sync.Mutex
	for _, j := range jobs {
		var wg sync.WaitGroup
		workers := runtime.GOMAXPROCS(0)
		for w := range workers {
			wg.Go(func() {
				for i := w; i < len(j.p.tokens); i += workers {
					tok, err := j.mint(i)
					if err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
						return
					}
					j.p.tokens[i] = tok
				}
			})
		}
		wg.Wait()
	}
	probe := func(k *jwkstest.Key, class string) string {
		tok, err := sign(k, class, nil, nil)(0)
		errs = append(errs, err)
		return tok
	}
	t.probeA = probe(t.key1, "probe-a")
	t.probeB = probe(t.key2, "probe-b")
	t.probeRev2 = probe(t.key1, "probe-rev2")
	t.probeRules = probe(t.key1, "probe-rules")
	for i := range 50 {
		c := iss.Claims(api, map[string]any{
			"sub":   fmt.Sprintf("auth0|0a0a0e%018x", i),
			"scope": "openid read:contacts",
			"exp":   now.Add(24 * time.Hour).Unix(),
		})
		t.opaque = append(t.opaque, iss.MintOpaque(c))
	}
	return t, errors.Join(errs...)
}

// denyList is the deny list file: the rev pool's jti, and after the update
// the rev2 pool's and its probe's.
func denyList(t *tokens, updated bool) []byte {
	var jtis []string
	for i := range t.rev.tokens {
		jtis = append(jtis, fmt.Sprintf("%q", fmt.Sprintf("rev.%d", i)))
	}
	if updated {
		for i := range t.rev2.tokens {
			jtis = append(jtis, fmt.Sprintf("%q", fmt.Sprintf("rev2.%d", i)))
		}
		jtis = append(jtis, `"probe-rev2.0"`)
	}
	return []byte(`{"jti": [` + strings.Join(jtis, ",") + `]}`)
}

// rulesFile is the route rules: /admin/ needs a scope no token has;
// /api/reports/ needs read:reports before the update (no token has it) and
// read:contacts after.
func rulesFile(updated bool) []byte {
	reports := "read:reports"
	if updated {
		reports = "read:contacts"
	}
	return []byte(`routes:
  - match: "GET /api/"
    scopes: ["read:contacts"]
  - match: "GET /api/reports/"
    scopes: ["` + reports + `"]
  - match: "GET /admin/"
    scopes: ["admin"]
  - match: "GET /public/"
    public: true
`)
}
