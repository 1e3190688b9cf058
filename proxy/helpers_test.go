package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/proxy"
	"github.com/tokenward/tokenward/scopes"
)

const audience = "https://api.example.com"

// testRules exercise every kind of pattern. The global requirement is "api".
const testRules = `
routes:
  - match: "GET /api/contacts/"
    scopes: ["read:contacts"]
  - match: "POST /api/contacts/"
    any_scopes: ["write:contacts", "admin"]
  - match: "GET /api/contacts/{id}/notes"
    scopes: ["read:notes"]
  - match: "DELETE /api/"
    scopes: ["admin"]
  - match: "/files/{rest...}"
    scopes: ["read:files"]
  - match: "admin.example.com/"
    scopes: ["admin"]
  - match: "GET /public/"
    public: true
  - match: "GET /status"
    public: true
`

var globalScopes = scopes.All("api")

// newIssuer starts a test issuer closed with the test.
func newIssuer(tb testing.TB) *jwkstest.Issuer {
	tb.Helper()
	iss := jwkstest.NewIssuer()
	tb.Cleanup(iss.Close)
	return iss
}

// staticKeys fetches the issuer's JWKS once into a static set, so that tests
// not about key fetching never wait on one.
func staticKeys(tb testing.TB, iss *jwkstest.Issuer) *jwks.Static {
	tb.Helper()
	resp, err := http.Get(iss.JWKSURL())
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	set, err := jwks.NewStatic(body)
	if err != nil {
		tb.Fatal(err)
	}
	return set
}

// newValidator trusts iss with its keys fetched once.
func newValidator(tb testing.TB, iss *jwkstest.Issuer) *middleware.Validator {
	tb.Helper()
	v, err := middleware.NewValidator([]middleware.Issuer{{URL: iss.URL(), Keys: staticKeys(tb, iss)}},
		[]string{audience}, middleware.ValidatorOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// mint returns a valid token for audience with extra claims merged in.
func mint(tb testing.TB, iss *jwkstest.Issuer, extra map[string]any) string {
	tb.Helper()
	tok, err := iss.Mint(iss.Claims(audience, extra))
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// withScope returns a valid token granting scope (space-delimited).
func withScope(tb testing.TB, iss *jwkstest.Issuer, scope string) string {
	tb.Helper()
	if scope == "" {
		return mint(tb, iss, nil)
	}
	return mint(tb, iss, map[string]any{"scope": scope})
}

func mustRules(tb testing.TB, yaml string) *proxy.Rules {
	tb.Helper()
	r, err := proxy.ParseRules([]byte(yaml), globalScopes)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// seen is what the upstream received.
type seen struct {
	method     string
	requestURI string
	host       string
	proto      int
	header     http.Header
	body       string
	te         []string
}

// upstream is a test API that records each request it receives and answers
// 200 "upstream".
type upstream struct {
	*httptest.Server
	got chan seen
}

func newUpstream(tb testing.TB) *upstream {
	tb.Helper()
	u := &upstream{got: make(chan seen, 64)}
	u.Server = httptest.NewServer(u.handler())
	tb.Cleanup(u.Close)
	return u
}

func (u *upstream) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.got <- seen{method: r.Method, requestURI: r.RequestURI, host: r.Host, proto: r.ProtoMajor,
			header: r.Header.Clone(), body: string(body), te: r.TransferEncoding}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "upstream")
	})
}

// last returns what the upstream received for the request just answered.
// The upstream records before it answers, so once the client has the
// response the record is there.
func (u *upstream) last(tb testing.TB) seen {
	tb.Helper()
	select {
	case s := <-u.got:
		return s
	default:
		tb.Fatal("the request did not reach the upstream")
		return seen{}
	}
}

// none fails if the upstream received anything.
func (u *upstream) none(tb testing.TB) {
	tb.Helper()
	select {
	case s := <-u.got:
		tb.Fatalf("the upstream received %s %s; it should not have", s.method, s.requestURI)
	default:
	}
}

// defaultConfig is a proxy configuration for iss with the test rules and the
// subject sent as X-Auth-Subject.
func defaultConfig(tb testing.TB, iss *jwkstest.Issuer) proxy.Config {
	return proxy.Config{
		Validator:    newValidator(tb, iss),
		Rules:        mustRules(tb, testRules),
		ClaimHeaders: []proxy.ClaimHeader{{Claim: "sub", Header: "X-Auth-Subject"}},
	}
}

// startProxy serves a Proxy in front of target.
func startProxy(tb testing.TB, target string, cfg proxy.Config, opts proxy.UpstreamOptions) *httptest.Server {
	tb.Helper()
	p, err := proxy.New(target, cfg, opts)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(p)
	tb.Cleanup(srv.Close)
	return srv
}

// request is one client request in a table.
type request struct {
	method string
	host   string // "" means the server's address
	path   string
	token  string // "" means no Authorization header
	header http.Header
	body   io.Reader
}

// do sends req to srv and returns the response with its body read.
func do(tb testing.TB, srv *httptest.Server, req request) (*http.Response, string) {
	tb.Helper()
	return doAt(tb, srv.Client(), srv.URL, req)
}

// doAt sends req to the server at baseURL with client.
func doAt(tb testing.TB, client *http.Client, baseURL string, req request) (*http.Response, string) {
	tb.Helper()
	method := req.method
	if method == "" {
		method = http.MethodGet
	}
	r, err := http.NewRequest(method, baseURL+req.path, req.body)
	if err != nil {
		tb.Fatal(err)
	}
	if req.host != "" {
		r.Host = req.host
	}
	for k, vs := range req.header {
		r.Header[k] = vs
	}
	if req.token != "" {
		r.Header.Set("Authorization", "Bearer "+req.token)
	}
	resp, err := client.Do(r)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp, string(body)
}

// rawRequest writes a request byte for byte, so that paths reach the server
// exactly as written, and reads the response.
func rawRequest(tb testing.TB, addr, raw string) (*http.Response, string) {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		tb.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// wantChallenge checks the WWW-Authenticate answer of a refusal.
func wantChallenge(tb testing.TB, resp *http.Response, parts ...string) {
	tb.Helper()
	got := resp.Header.Get("WWW-Authenticate")
	if !strings.HasPrefix(got, "Bearer ") {
		tb.Errorf("WWW-Authenticate = %q, want a Bearer challenge", got)
	}
	for _, p := range parts {
		if !strings.Contains(got, p) {
			tb.Errorf("WWW-Authenticate = %q, want it to contain %q", got, p)
		}
	}
}

// waitCtx is a context bounding a wait in a test, so a broken expectation
// fails instead of hanging.
func waitCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// within fails the test if ch yields nothing within a generous bound; the
// bound catches a hang, it is not a synchronisation.
func within[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case v := <-ch:
		return v
	case <-t.C:
		tb.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

func hostOf(srv *httptest.Server) string { return strings.TrimPrefix(srv.URL, "http://") }

func sprintHeader(h http.Header) string {
	var b strings.Builder
	h.Write(&b)
	return fmt.Sprintf("%q", b.String())
}
