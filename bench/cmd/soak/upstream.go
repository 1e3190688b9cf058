package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// upstream is the API behind tokenward. It records what reached it — the
// class of every request, read from the token's jti (each token's jti starts
// with its class: "a.17", "exp.3") or, without a token, from the route — so
// the soak can assert from the upstream's side that no invalid request was
// forwarded. It can be stopped and started again on the same address (the
// "upstream restarted" fault).
type upstream struct {
	addr        string
	opaqueValid map[string]bool // the real opaque tokens (read-only)

	// Flags the soak sets once a change is in force (confirmed by a
	// probe): from then on, what the flag names must not be forwarded.
	oldKeyRetired  atomic.Bool // tokens of pool "a" (signed by the retired key)
	reportsAllowed atomic.Bool // the rules update opened /api/reports/

	mu          sync.Mutex // guards srv, forwarded, violations
	srv         *http.Server
	forwarded   map[string]int64 // "class route" → requests
	violations  []string         // the first few, for the report
	nViolations int64
}

func newUpstream(addr string, opaqueValid map[string]bool) *upstream {
	return &upstream{addr: addr, opaqueValid: opaqueValid, forwarded: map[string]int64{}}
}

// start listens on u.addr and serves until stop.
func (u *upstream) start() error {
	ln, err := net.Listen("tcp", u.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(u.serve), ReadHeaderTimeout: 10 * time.Second}
	u.mu.Lock()
	u.srv = srv
	u.mu.Unlock()
	go srv.Serve(ln)
	return nil
}

// stop closes the listener and every connection at once, as a crashed or
// redeployed API does.
func (u *upstream) stop() {
	u.mu.Lock()
	srv := u.srv
	u.srv = nil
	u.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// route is the routing key of a path: the first segment or two.
func route(path string) string {
	switch {
	case strings.HasPrefix(path, "/api/slow/"):
		return "/api/slow/"
	case strings.HasPrefix(path, "/api/stream/"):
		return "/api/stream/"
	case strings.HasPrefix(path, "/api/reports/"):
		return "/api/reports/"
	case strings.HasPrefix(path, "/api/"):
		return "/api/"
	case strings.HasPrefix(path, "/public/"):
		return "/public/"
	case strings.HasPrefix(path, "/admin/"):
		return "/admin/"
	}
	return "other"
}

// classOf reads the class of the request's token: the prefix of its jti
// (the token is not verified: tokenward did that, or should have), "opaque"
// or "made-up opaque", or "none".
func (u *upstream) classOf(r *http.Request) (class, sub string) {
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return "none", ""
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		if u.opaqueValid[tok] {
			return "opaque", ""
		}
		return "made-up opaque", ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "unparsable", ""
	}
	var c struct {
		JTI string `json:"jti"`
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return "unparsable", ""
	}
	class, _, _ = strings.Cut(c.JTI, ".")
	return class, c.Sub
}

func (u *upstream) violation(msg string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.nViolations++
	if len(u.violations) < 20 {
		u.violations = append(u.violations, msg)
	}
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	class, sub := u.classOf(r)
	rt := route(r.URL.Path)
	u.mu.Lock()
	u.forwarded[class+" "+rt]++
	u.mu.Unlock()

	// What must never reach the API.
	probe := strings.HasPrefix(class, "probe")
	switch {
	case probe:
	case invalidClasses[class]:
		u.violation("forwarded a token of class " + class + " to " + rt)
	case class == "a" && u.oldKeyRetired.Load():
		u.violation("forwarded a token signed by the retired key to " + rt)
	case rt == "/admin/":
		u.violation("forwarded a request to /admin/, which needs a scope no token has")
	case rt == "/api/reports/" && !u.reportsAllowed.Load():
		u.violation("forwarded a request to /api/reports/ before the rules allowed it")
	case class == "none" && rt != "/public/":
		u.violation("forwarded a request without a token to " + rt)
	}
	if validJWTClasses[class] && r.Header.Get("X-Auth-Subject") != sub {
		u.violation("X-Auth-Subject is not the token's sub")
	}

	switch rt {
	case "/api/slow/":
		select {
		case <-time.After(slowAnswer):
		case <-r.Context().Done():
			return
		}
	case "/api/stream/":
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range streamChunks {
			if i > 0 {
				select {
				case <-time.After(streamGap):
				case <-r.Context().Done():
					return
				}
			}
			w.Write([]byte("data: tick\n\n"))
			w.(http.Flusher).Flush()
		}
		return
	}
	h := w.Header()
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["Content-Length"] = []string{"2"}
	w.Write([]byte("ok"))
}

const (
	slowAnswer   = 300 * time.Millisecond
	streamChunks = 5
	streamGap    = 20 * time.Millisecond
)

// record returns what reached the upstream.
func (u *upstream) record() (map[string]int64, []string, int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	f := make(map[string]int64, len(u.forwarded))
	for k, v := range u.forwarded {
		f[k] = v
	}
	return f, append([]string(nil), u.violations...), u.nViolations
}

// waitListening polls addr until it accepts a connection.
func waitListening(ctx context.Context, addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New(addr + " not listening: " + err.Error())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
