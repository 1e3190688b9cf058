package main

import (
	"strings"
	"testing"
)

// TestJWTNotSentToUserInfo: with TOKENWARD_OPAQUE_TOKENS=userinfo, a JWT made
// unparsable as a strict compact JWS (padded with "=", re-encoded in the
// standard alphabet) is refused with 401 invalid_token, and the issuer's
// /userinfo is never asked about it: a lenient /userinfo would vouch for a
// JWT issued for another API (issue 9, finding 3).
func TestJWTNotSentToUserInfo(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	up := echoUpstream(t)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_ISSUERS":       iss.URL(),
		"TOKENWARD_AUDIENCES":     audience,
		"TOKENWARD_UPSTREAM":      up.URL,
		"TOKENWARD_OPAQUE_TOKENS": "userinfo",
		"TOKENWARD_USERINFO_URL":  iss.UserInfoURL(),
	})
	otherAPI, err := iss.Mint(iss.Claims("https://other.example.com", nil))
	if err != nil {
		t.Fatal(err)
	}
	std := strings.NewReplacer("-", "+", "_", "/").Replace(otherAPI)
	for name, token := range map[string]string{
		"padded":            otherAPI + "==",
		"standard alphabet": std,
		"header and claims": otherAPI[:strings.LastIndexByte(otherAPI, '.')],
	} {
		r := do(t, srv.client, "GET", srv.url+"/elsewhere", bearer(token))
		if r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s: status %d, WWW-Authenticate %q; want 401 invalid_token", name, r.status, r.header.Get("WWW-Authenticate"))
		}
	}
	if n := iss.UserInfoRequests(); n != 0 {
		t.Errorf("%d /userinfo requests for JWT-shaped tokens, want 0", n)
	}
	// Control: an opaque token is still asked about.
	opaque := iss.MintOpaque(iss.Claims(iss.URL()+"userinfo", map[string]any{"sub": "auth0|opaque-bob"}))
	if r := do(t, srv.client, "GET", srv.url+"/elsewhere", bearer(opaque)); r.status != 200 {
		t.Fatalf("opaque token: status %d, body %s", r.status, r.body)
	}
	if n := iss.UserInfoRequests(); n != 1 {
		t.Errorf("%d /userinfo requests, want 1", n)
	}
}
