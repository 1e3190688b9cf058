package jwks_test

import (
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
)

// Status counts the fetches that succeeded and failed, and the keys the last
// good fetch dropped, so that metrics read at scrape time need no event
// hook. Each event is recorded after the status it reports.
func TestStatusCounts(t *testing.T) {
	iss := startIssuer(t, jwkstest.Options{})
	r, rec := newRemote(t, iss.JWKSURL(), jwks.RemoteOptions{
		RefreshInterval:    20 * time.Millisecond,
		MinRefreshInterval: 10 * time.Millisecond,
	})
	rec.wait(t, 1)
	if s := r.Status(); s.FetchesOK < 1 || s.FetchesFailed != 0 || s.Dropped != 0 {
		t.Fatalf("Status() after the first fetch = %+v, want one success", s)
	}

	iss.SetDown(true)
	n, _ := rec.waitFor(t, rec.len(), func(e jwks.RefreshEvent) bool { return e.Err != nil })
	s := r.Status()
	if s.FetchesFailed < 1 || s.FetchesOK < 1 {
		t.Fatalf("Status() after a failure = %+v, want the success and the failure counted", s)
	}

	// A set with one unusable key (a private key): it is dropped and counted.
	pub := publicJWK(t, iss.SigningKey())
	priv := publicJWK(t, newKey(t, "RS256"))
	priv["d"] = "AAAA"
	iss.SetJWKSBody(jwksJSON(t, pub, priv)) // before SetDown(false): every success serves it
	iss.SetDown(false)
	rec.waitFor(t, n+1, func(e jwks.RefreshEvent) bool { return e.Err == nil })
	after := r.Status()
	if after.FetchesOK <= s.FetchesOK || after.FetchesFailed < s.FetchesFailed || after.Dropped != 1 {
		t.Errorf("Status() after recovery = %+v (before %+v), want one more success and 1 dropped", after, s)
	}
}
