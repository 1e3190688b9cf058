package httpfetch_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/internal/httpfetch"
)

func TestCheckURL(t *testing.T) {
	for _, tt := range []struct {
		url          string
		ok, sourceOK bool // CheckURL, CheckSourceURL
	}{
		{"https://tenant.auth0.com/", true, true},
		{"https://login.northwind.com/.well-known/jwks.json", true, true},
		{"https://tenant.auth0.com", true, true},
		{"http://127.0.0.1:8080/", true, true},
		{"http://127.9.9.9/", true, true},
		{"http://[::1]:8080/", true, true},
		{"http://localhost:8080/", true, true},
		{"http://LocalHost/", true, true},
		{"http://tenant.auth0.com/", false, false},
		{"http://10.0.0.1/", false, false},
		{"http://localhost.evil.com/", false, false},
		{"http://127.0.0.1.nip.io/", false, false},
		{"http://[::ffff:10.0.0.1]/", false, false},
		{"ftp://127.0.0.1/", false, false},
		{"file:///etc/passwd", false, false},
		{"tenant.auth0.com", false, false},
		{"/.well-known/jwks.json", false, false},
		{"", false, false},
		{"https://", false, false},
		{"https:tenant.auth0.com", false, false},
		{"https://user:pass@tenant.auth0.com/", false, false},
		{"https://tenant.auth0.com/?x=1", false, true},
		{"https://tenant.auth0.com/#frag", false, true},
		{"http://lists.example.com/deny.json?key=k", false, false},
		{"https://tenant auth0.com/", false, false},
	} {
		for _, c := range []struct {
			name  string
			check func(string) error
			ok    bool
		}{{"CheckURL", httpfetch.CheckURL, tt.ok}, {"CheckSourceURL", httpfetch.CheckSourceURL, tt.sourceOK}} {
			err := c.check(tt.url)
			if (err == nil) != c.ok {
				t.Errorf("%s(%q) = %v, want ok=%v", c.name, tt.url, err, c.ok)
			}
			var ue *httpfetch.URLError
			if err != nil && !errors.As(err, &ue) {
				t.Errorf("%s(%q) = %v, not a *URLError", c.name, tt.url, err)
			}
		}
	}
}

// A URLError never shows user info, nor, from CheckSourceURL, the query:
// either may be a credential.
func TestURLErrorHidesCredentials(t *testing.T) {
	for _, tt := range []struct {
		check func(string) error
		url   string
		want  string
	}{
		{httpfetch.CheckURL, "https://user:hunter2@idp.example.com/", `"https://REDACTED@idp.example.com/" must not have user info`},
		{httpfetch.CheckSourceURL, "https://user:hunter2@lists.example.com/deny.json", `"https://REDACTED@lists.example.com/deny.json" must not have user info`},
		{httpfetch.CheckSourceURL, "http://lists.example.com/deny.json?key=hunter2", `"http://lists.example.com/deny.json?(query not shown)" must use https (http is allowed only for loopback hosts)`},
	} {
		err := tt.check(tt.url)
		var ue *httpfetch.URLError
		if !errors.As(err, &ue) || ue.Problem != tt.want || err.Error() != tt.want {
			t.Errorf("check(%q) = %v, want %q", tt.url, err, tt.want)
		}
		if ue != nil && strings.Contains(ue.URL, "hunter2") {
			t.Errorf("check(%q): URL %q shows the credential", tt.url, ue.URL)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "127.0.0.1": true, "127.255.0.1": true, "::1": true,
		"": false, "0.0.0.0": false, "10.0.0.1": false, "example.com": false, "localhost.": false, "[::1]": false,
	} {
		if got := httpfetch.IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}
