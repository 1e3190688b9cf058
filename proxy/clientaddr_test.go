package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/proxy"
)

// rawHeaderUpstream answers every request with okAnswer and reports the
// header lines it received, names exactly as they arrived on the wire.
func rawHeaderUpstream(t *testing.T) (*rawUpstream, <-chan []string) {
	got := make(chan []string, 8)
	up := newRawUpstream(t, func(_ int32, c net.Conn, br *bufio.Reader) {
		tp := textproto.NewReader(br)
		for {
			if _, err := tp.ReadLine(); err != nil { // the request line
				return
			}
			var lines []string
			for {
				line, err := tp.ReadLine()
				if err != nil {
					return
				}
				if line == "" {
					break
				}
				lines = append(lines, line)
			}
			got <- lines
			io.WriteString(c, okAnswer)
		}
	})
	return up, got
}

// TestClientAddressHeaders: headers that upstream frameworks read as the
// client's address or the proxy chain never reach the upstream as the
// client sent them, in any case or with "_" for "-" (which CGI-style
// frameworks read as the same header: HTTP_X_REAL_IP). The upstream gets
// the proxy's own X-Forwarded-For, -Host and -Proto, once each, and the
// client's other headers unchanged.
func TestClientAddressHeaders(t *testing.T) {
	iss := newIssuer(t)
	up, got := rawHeaderUpstream(t)
	srv := startProxy(t, up.url(), defaultConfig(t, iss), proxy.UpstreamOptions{})

	spoofed := []string{
		"Forwarded", "X_Forwarded_For", "X-Forwarded-For", "x_forwarded_host", "X_FORWARDED_PROTO",
		"X-Forwarded-Port", "X_Forwarded_Prefix", "X-Forwarded-Server", "X-Forwarded-Ssl",
		"X-Forwarded-Client-Cert", "X_Forwarded_Client_Cert", "X-Forwarded", "X-Real-Ip", "X_Real_IP",
		"x_real_ip", "True-Client-Ip", "True_Client_IP", "X-Client-Ip", "X_Client_IP", "Cf-Connecting-Ip",
		"CF_Connecting_IP", "Fastly-Client-Ip", "X-Cluster-Client-Ip", "X-Original-Forwarded-For",
		"Client-Cert", "Client_Cert_Chain", "X_Auth_Subject",
		"X-Original-Url", "X_Rewrite_URL", "X-Original-Uri", "x_original_method",
	}
	h := http.Header{"X_Custom_Thing": {"kept"}, "X-Request-Id": {"kept"}}
	for _, name := range spoofed {
		h[name] = []string{"6.6.6.6"}
	}
	resp, body := do(t, srv, request{host: "api.example.com", path: "/x", token: withScope(t, iss, "api"), header: h})
	if resp.StatusCode != 200 || body != "fresh" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	lines := within(t, got, "the upstream's headers")
	var forwarded []string
	for _, line := range lines {
		name, value, _ := strings.Cut(line, ":")
		key := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		switch {
		case strings.Contains(value, "6.6.6.6"):
			t.Errorf("upstream got the client's %q", line)
		case strings.HasPrefix(key, "x-forwarded"):
			forwarded = append(forwarded, line)
		}
	}
	slices.Sort(forwarded)
	want := []string{"X-Forwarded-For: 127.0.0.1", "X-Forwarded-Host: api.example.com", "X-Forwarded-Proto: http"}
	if !slices.Equal(forwarded, want) {
		t.Errorf("upstream X-Forwarded-* %q, want %q", forwarded, want)
	}
	for _, kept := range []string{"X_Custom_Thing: kept", "X-Request-Id: kept"} {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.EqualFold(l, kept) }) {
			t.Errorf("upstream did not get %q", kept)
		}
	}
}
