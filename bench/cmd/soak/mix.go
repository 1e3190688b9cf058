package main

import (
	"crypto/rand"
	"encoding/base64"
	mrand "math/rand/v2"
	"sync/atomic"
	"time"
)

// kind is what one request is, and what tokenward must answer.
type kind struct {
	name   string
	allow  []int // statuses that are right
	notify bool  // refusals must carry WWW-Authenticate (401, 403)
	valid  bool  // a request that must be served (200): a refusal is a valid request refused
	fast   bool  // counts in the latency percentiles (not the slow and streaming answers)
}

// The kinds, in the order of the report.
var (
	kValid         = &kind{name: "valid token", allow: []int{200}, valid: true, fast: true}
	kSlow          = &kind{name: "valid token, slow answer (300 ms)", allow: []int{200}, valid: true}
	kStream        = &kind{name: "valid token, streamed answer", allow: []int{200}, valid: true}
	kPublic        = &kind{name: "public route, no token", allow: []int{200}, valid: true, fast: true}
	kScope         = &kind{name: "valid token, scope missing (/admin/)", allow: []int{403}, notify: true, fast: true}
	kReportsBefore = &kind{name: "/api/reports/ before the rules update", allow: []int{403}, notify: true, fast: true}
	kReportsAfter  = &kind{name: "/api/reports/ after the rules update", allow: []int{200}, valid: true, fast: true}
	kExpired       = &kind{name: "expired", allow: []int{401}, notify: true, fast: true}
	kAudience      = &kind{name: "wrong audience", allow: []int{401}, notify: true, fast: true}
	kSignature     = &kind{name: "bad signature", allow: []int{401}, notify: true, fast: true}
	kUnknownKid    = &kind{name: "unknown kid", allow: []int{401}, notify: true, fast: true}
	kRevoked       = &kind{name: "revoked (deny list at start)", allow: []int{401}, notify: true, fast: true}
	kRevoked2      = &kind{name: "revoked by the deny-list update", allow: []int{401}, notify: true, fast: true}
	kRetired       = &kind{name: "signed by the retired key", allow: []int{401}, notify: true, fast: true}
	// 503 with Retry-After is documented for an opaque token while the
	// issuer is down, failing or busy (TOKENWARD_OPAQUE_MAX_CONCURRENCY).
	kMadeUp = &kind{name: "made-up opaque token", allow: []int{401, 503}, notify: true, fast: true}
	kOpaque = &kind{name: "real opaque token", allow: []int{200, 503}, valid: true, fast: true}
)

var allKinds = []*kind{kValid, kSlow, kStream, kPublic, kScope, kReportsBefore, kReportsAfter,
	kExpired, kAudience, kSignature, kUnknownKid, kRevoked, kRevoked2, kRetired, kMadeUp, kOpaque}

// state is what the faults changed so far; the mix reads it on every slot.
type state struct {
	bInUse      atomic.Bool // the rotation's new key is published and seen: pool b is valid
	aWithdrawn  atomic.Bool // the old key is being retired: pool a is not sent
	aRetired    atomic.Bool // tokenward refuses pool a: sent as invalid
	rev2        atomic.Bool // the deny-list update is in force
	rulesPaused atomic.Bool // the rules file is being changed: /api/reports/ not sent
	rulesNew    atomic.Bool // the rules update is in force
	burst       atomic.Bool // the made-up opaque token burst
}

// request is one slot's request.
type request struct {
	kind  *kind
	path  string
	token string
}

// picker chooses the request of each slot. Each worker has its own.
type picker struct {
	t      *tokens
	st     *state
	rng    *mrand.Rand
	start  time.Time     // the window is at the start of the pools then
	span   time.Duration // the time the window takes to slide through the pools
	window int
}

// valid picks a valid token: from a window that slides through the pools
// over the run, so that users come and go (and the cache, smaller than the
// pools, evicts), each token used several times while in the window.
func (p *picker) valid() string {
	pl := p.t.a
	switch {
	case p.st.aWithdrawn.Load():
		pl = p.t.b
	case p.st.bInUse.Load() && p.rng.IntN(2) == 0:
		pl = p.t.b
	}
	n := len(pl.tokens)
	base := int(float64(time.Since(p.start)) / float64(p.span) * float64(n))
	i := (base + p.rng.IntN(min(p.window, n))) % n
	pl.mark(i)
	return pl.tokens[i]
}

func (p *picker) from(pl *pool) string {
	i := p.rng.IntN(len(pl.tokens))
	pl.mark(i)
	return pl.tokens[i]
}

// pick chooses a request: per 10,000, 8,550 valid on the API (25
// of them slow, 25 streamed), 200 public, 100 without the route's scope,
// 50 on the route the rules update changes, 1,000 invalid (200 each of
// expired, wrong audience, bad signature, unknown kid, revoked), 50 made-up
// opaque and 50 real opaque tokens. During the opaque burst, 1,000 of the
// valid ones are made-up opaque tokens instead.
func (p *picker) pick() request {
	r := p.rng.IntN(10000)
	if p.st.burst.Load() && r < 1000 {
		return request{kMadeUp, "/api/contacts", madeUpOpaque()}
	}
	switch {
	case r < 25:
		return request{kSlow, "/api/slow/1", p.valid()}
	case r < 50:
		return request{kStream, "/api/stream/1", p.valid()}
	case r < 8490:
		return request{kValid, "/api/contacts", p.valid()}
	case r < 8690:
		return request{kPublic, "/public/health", ""}
	case r < 8790:
		return request{kScope, "/admin/users", p.valid()}
	case r < 8840:
		switch {
		case p.st.rulesNew.Load():
			return request{kReportsAfter, "/api/reports/q1", p.valid()}
		case p.st.rulesPaused.Load():
			return request{kValid, "/api/contacts", p.valid()}
		}
		return request{kReportsBefore, "/api/reports/q1", p.valid()}
	case r < 9040:
		return request{kExpired, "/api/contacts", p.from(p.t.exp)}
	case r < 9240:
		return request{kAudience, "/api/contacts", p.from(p.t.aud)}
	case r < 9440:
		return request{kSignature, "/api/contacts", p.from(p.t.sig)}
	case r < 9640:
		if p.st.aRetired.Load() && r < 9540 {
			return request{kRetired, "/api/contacts", p.from(p.t.a)}
		}
		return request{kUnknownKid, "/api/contacts", p.from(p.t.kid)}
	case r < 9840:
		if p.st.rev2.Load() && r < 9740 {
			return request{kRevoked2, "/api/contacts", p.from(p.t.rev2)}
		}
		return request{kRevoked, "/api/contacts", p.from(p.t.rev)}
	case r < 9890:
		return request{kMadeUp, "/api/contacts", madeUpOpaque()}
	case r < 9940:
		return request{kOpaque, "/api/contacts", p.t.opaque[p.rng.IntN(len(p.t.opaque))]}
	}
	return request{kValid, "/api/contacts", p.valid()}
}

// madeUpOpaque is a random string shaped like an opaque access token, that
// no issuer issued.
func madeUpOpaque() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
