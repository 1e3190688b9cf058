package jwks_test

import (
	"testing"

	"github.com/tokenward/tokenward/jwks"
)

func TestCheckURL(t *testing.T) {
	for _, tt := range []struct {
		url string
		ok  bool
	}{
		{"https://tenant.auth0.com/", true},
		{"https://login.northwind.com/.well-known/jwks.json", true},
		{"https://tenant.auth0.com", true},
		{"http://127.0.0.1:8080/", true},
		{"http://127.9.9.9/", true},
		{"http://[::1]:8080/", true},
		{"http://localhost:8080/", true},
		{"http://LocalHost/", true},
		{"http://tenant.auth0.com/", false},
		{"http://10.0.0.1/", false},
		{"http://localhost.evil.com/", false},
		{"http://127.0.0.1.nip.io/", false},
		{"http://[::ffff:10.0.0.1]/", false},
		{"ftp://127.0.0.1/", false},
		{"file:///etc/passwd", false},
		{"tenant.auth0.com", false},
		{"/.well-known/jwks.json", false},
		{"", false},
		{"https://", false},
		{"https:tenant.auth0.com", false},
		{"https://user:pass@tenant.auth0.com/", false},
		{"https://tenant.auth0.com/?x=1", false},
		{"https://tenant.auth0.com/#frag", false},
		{"https://tenant auth0.com/", false},
	} {
		err := jwks.CheckURL(tt.url)
		if (err == nil) != tt.ok {
			t.Errorf("CheckURL(%q) = %v, want ok=%v", tt.url, err, tt.ok)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "127.0.0.1": true, "127.255.0.1": true, "::1": true,
		"": false, "0.0.0.0": false, "10.0.0.1": false, "example.com": false, "localhost.": false, "[::1]": false,
	} {
		if got := jwks.IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}
