package main

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The soak's "no invalid request forwarded" rests on the upstream's record:
// it must flag each thing that must not pass, and nothing else.
func TestUpstreamFlagsWhatMustNotPass(t *testing.T) {
	tok := func(jti, sub string) string {
		payload := base64.RawURLEncoding.EncodeToString([]byte(`{"jti":"` + jti + `","sub":"` + sub + `"}`))
		return "eyJhbGciOiJFUzI1NiJ9." + payload + ".c2ln"
	}
	for _, tc := range []struct {
		name, path, token, subject string
		retired, reportsOpen       bool
		flagged                    bool
	}{
		{"valid", "/api/contacts", tok("a.1", "u1"), "u1", false, false, false},
		{"valid, wrong subject header", "/api/contacts", tok("a.1", "u1"), "u2", false, false, true},
		{"expired forwarded", "/api/contacts", tok("exp.3", "u1"), "u1", false, false, true},
		{"revoked by the update forwarded", "/api/contacts", tok("rev2.3", "u1"), "u1", false, false, true},
		{"made-up opaque forwarded", "/api/contacts", "c29tZXRoaW5n", "", false, false, true},
		{"real opaque", "/api/contacts", "known-opaque", "", false, false, false},
		{"old key after retirement", "/api/contacts", tok("a.1", "u1"), "u1", true, false, true},
		{"new key after retirement", "/api/contacts", tok("b.1", "u1"), "u1", true, false, false},
		{"/admin/", "/admin/users", tok("b.1", "u1"), "u1", false, false, true},
		{"/api/reports/ before the rules", "/api/reports/q1", tok("b.1", "u1"), "u1", false, false, true},
		{"/api/reports/ after the rules", "/api/reports/q1", tok("b.1", "u1"), "u1", false, true, false},
		{"no token on a protected route", "/api/contacts", "", "", false, false, true},
		{"no token on the public route", "/public/health", "", "", false, false, false},
		{"probe", "/api/contacts", tok("probe-a.0", "u1"), "", true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUpstream("127.0.0.1:0", map[string]bool{"known-opaque": true})
			u.oldKeyRetired.Store(tc.retired)
			u.reportsAllowed.Store(tc.reportsOpen)
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			if tc.subject != "" {
				req.Header.Set("X-Auth-Subject", tc.subject)
			}
			u.serve(httptest.NewRecorder(), req)
			_, v, n := u.record()
			if (n > 0) != tc.flagged {
				t.Errorf("flagged %d (%v), want flagged %v", n, v, tc.flagged)
			}
		})
	}
}
