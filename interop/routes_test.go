package interop_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenward/tokenward/internal/nginxtest"
	"github.com/tokenward/tokenward/proxy"
	"github.com/tokenward/tokenward/scopes"
)

// diffRules are the rules of TestDifferentialRoutes; every upstream app has
// one route per rule and a catch-all. No global scopes: a request no rule
// matches needs a valid token and nothing more.
const diffRules = `
routes:
  - match: "GET /static/"
    public: true
  - match: "GET /status"
    public: true
  - match: "/admin/"
    scopes: ["admin"]
  - match: "DELETE /api/users/{id}"
    scopes: ["admin"]
  - match: "GET /api/users/{id}"
    scopes: ["read:users"]
`

// routeNeed is what serving a route requires of the client.
type routeNeed int

const (
	needNothing   routeNeed = iota // a public route
	needToken                      // a valid token, any scopes: what no rule matches
	needReadUsers                  // a valid token with read:users
	needAdmin                      // a valid token with admin
)

func (n routeNeed) String() string {
	return [...]string{"nothing (public)", "a valid token", "read:users", "admin"}[n]
}

// routeNeeds maps the routes the upstream apps name to their rules'
// requirements. Each app serves static and status for GET (and HEAD) only,
// users_get and users_delete for their method only, admin for any method;
// any other request goes to unmatched.
var routeNeeds = map[string]routeNeed{
	"static":       needNothing,
	"status":       needNothing,
	"admin":        needAdmin,
	"users_delete": needAdmin,
	"users_get":    needReadUsers,
	"unmatched":    needToken,
}

// diffToken is one client credential.
type diffToken struct {
	name   string
	token  string // "" for none
	scopes []string
}

func (tok diffToken) satisfies(n routeNeed) bool {
	switch n {
	case needNothing:
		return true
	case needToken:
		return tok.token != ""
	case needReadUsers:
		return tok.token != "" && slices.Contains(tok.scopes, "read:users")
	default:
		return tok.token != "" && slices.Contains(tok.scopes, "admin")
	}
}

// diffRequest is one line of the table, written to the wire byte for byte.
type diffRequest struct {
	method string   // as sent: "delete" stays lower-case
	target string   // the request target as sent: origin or absolute form
	host   string   // the Host header
	header []string // more header lines, "Name: value", as sent
	body   string   // a request body, sent with its Content-Length unless chunked
}

func (r diffRequest) String() string {
	s := fmt.Sprintf("%s %s HTTP/1.1 | Host: %s", r.method, r.target, r.host)
	for _, h := range r.header {
		s += " | " + h
	}
	if r.body != "" {
		s += fmt.Sprintf(" | body %q", r.body)
	}
	return s
}

// wire is the request as the client sends it, with token if not empty.
func (r diffRequest) wire(token string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", r.method, r.target, r.host)
	if token != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", token)
	}
	for _, h := range r.header {
		b.WriteString(h + "\r\n")
	}
	chunked := slices.ContainsFunc(r.header, func(h string) bool { return strings.HasPrefix(h, "Transfer-Encoding:") })
	if m := strings.ToUpper(r.method); (m != "GET" && m != "HEAD" || r.body != "") && !chunked {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(r.body))
	}
	b.WriteString("Connection: close\r\n\r\n")
	b.WriteString(r.body)
	return b.Bytes()
}

// originForm is what a gateway passes on as the original URI (NGINX's
// $request_uri, Traefik's X-Forwarded-Uri): the target without scheme and
// host.
func (r diffRequest) originForm() string {
	rest, ok := strings.CutPrefix(r.target, "http://")
	if !ok {
		return r.target
	}
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		if rest[i] == '?' {
			return "/" + rest[i:]
		}
		return rest[i:]
	}
	return "/"
}

// authority is the host the request is for: an absolute target's, else Host.
func (r diffRequest) authority() string {
	rest, ok := strings.CutPrefix(r.target, "http://")
	if !ok {
		return r.host
	}
	host, _, _ := strings.Cut(rest, "/")
	host, _, _ = strings.Cut(host, "?")
	return host
}

// rulesVariant is a rules file for the table: diffRules with or without the
// options that weaken the normalization contract.
type rulesVariant struct {
	name string
	yaml string
	// allowOverride: allow_method_override: [X-HTTP-Method-Override].
	allowOverride bool
	// allowEncodedSlash: allow_encoded_slash: true.
	allowEncodedSlash bool
	// only picks the lines the options concern; nil means all.
	only func(diffRequest) bool
}

var rulesVariants = []rulesVariant{
	{name: "strict", yaml: diffRules},
	{name: "opt-ins", yaml: "allow_method_override: [X-HTTP-Method-Override]\nallow_encoded_slash: true\n" + diffRules,
		allowOverride: true, allowEncodedSlash: true, only: func(r diffRequest) bool {
			return strings.Contains(strings.ToLower(r.target), "%2f") ||
				slices.ContainsFunc(r.header, func(h string) bool { return strings.Contains(strings.ToLower(h), "override") })
		}},
}

// overrideHeaders are the method-override headers the contract refuses, in
// every spelling a framework may read (case, "_" for "-").
var overrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// upperToken tells whether m is a method as the contract accepts one.
func upperToken(m string) bool {
	return m != "" && strings.IndexFunc(m, func(c rune) bool { return c < 'A' || c > 'Z' }) < 0
}

// contractRefusal applies the normalization contract (README, route rules;
// issue 9) under v's options: the reason the request must get 400, or "".
func contractRefusal(r diffRequest, v rulesVariant) string {
	if !upperToken(r.method) {
		return "method not upper-case"
	}
	for _, h := range r.header {
		name, value, _ := strings.Cut(h, ":")
		name = http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-"))
		switch {
		case !slices.Contains(overrideHeaders, name):
		case v.allowOverride && name == "X-Http-Method-Override":
			if !upperToken(strings.TrimSpace(value)) {
				return "allowed method override, but not to an upper-case method"
			}
		default:
			return "method-override header"
		}
	}
	path, _, _ := strings.Cut(r.originForm(), "?")
	lower := strings.ToLower(path)
	switch {
	case strings.Contains(path, ";"):
		return "; in the path"
	case strings.Contains(path, "//"):
		return "empty path segment"
	case strings.Contains(path, `\`) || strings.Contains(lower, "%5c"):
		return "backslash"
	case strings.Contains(lower, "%2f") && !v.allowEncodedSlash:
		return "encoded slash"
	}
	for _, seg := range strings.Split(path, "/") {
		if dec, err := url.PathUnescape(seg); err == nil && (dec == "." || dec == "..") {
			return "dot segment"
		}
	}
	return ""
}

// methodForm is one way of asking for a method.
type methodForm struct {
	method string
	header []string
	query  string // appended to the target
	body   string
}

// methodForms cross every path trick for /api/users/5, where GET and DELETE
// need different scopes.
var methodForms = []methodForm{
	{method: "GET"},
	{method: "DELETE"},
	{method: "delete"},
	{method: "Delete"},
	{method: "get"},
	{method: "POST", header: []string{"X-HTTP-Method-Override: DELETE"}},
	{method: "POST", header: []string{"X-HTTP-Method: DELETE"}},
	{method: "POST", header: []string{"X-Method-Override: DELETE"}},
	{method: "POST", header: []string{"x-http-method-override: delete"}},
	{method: "POST", header: []string{"X_HTTP_Method_Override: DELETE"}}, // HTTP_X_HTTP_METHOD_OVERRIDE in WSGI
	{method: "GET", header: []string{"X-HTTP-Method-Override: DELETE"}},
	{method: "POST", query: "_method=DELETE"}, // method-override's query getter
	{method: "POST", query: "%5Fmethod=delete"},
	{method: "POST", header: []string{"X-HTTP-Method-Override: DELETE, GET"}},
	{method: "POST", header: []string{"X-HTTP-Method-Override: GET", "X-HTTP-Method-Override: DELETE"}},
	{method: "POST", header: []string{"Content-Type: application/x-www-form-urlencoded"}, body: "_method=DELETE"},
	{method: "POST", header: []string{"Content-Type: Application/X-WWW-Form-Urlencoded; charset=UTF-8"}, body: "_method=DELETE"},
	{method: "POST", header: []string{"Content-Type: application/x-www-form-urlencoded", "Transfer-Encoding: chunked"},
		body: "e\r\n_method=DELETE\r\n0\r\n\r\n"},
}

// pathTricks returns spellings of target (a two-or-more-segment path) that
// some server might route to target, or to another route than tokenward
// matches.
func pathTricks(target string) []string {
	i := strings.IndexByte(target[1:], '/') + 1
	first, rest := target[:i], target[i:] // "/admin", "/users"
	body := target[1:]                    // "admin/users"
	title := func(s string) string {
		var b strings.Builder
		for j := 0; j < len(s); j++ {
			c := s[j]
			if j > 0 && s[j-1] == '/' && 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			b.WriteByte(c)
		}
		return b.String()
	}
	ps := []string{
		target, target + "/", target + "?x=1", target + "/?x=1",
		strings.ToUpper(target), title(target), strings.ToUpper(first) + rest, first + strings.ToUpper(rest),
		strings.ToUpper(target) + "/", title(target) + "/",
		first + ";x" + rest, first + ";" + rest, target + ";jsessionid=x", first + "/;" + rest[1:],
		first + "%3bx" + rest, target + "%3b", target + "%3B",
		"/" + target, first + "/" + rest, target + "//",
		"/." + target, first + "/." + rest, target + "/.", target + "/..", target + "/..;",
		"/%" + fmt.Sprintf("%02x", target[1]) + target[2:], // an encoded letter
		first + "%2f" + rest[1:], first + "%2F" + rest[1:], first + "%252f" + rest[1:],
		first + "%5c" + rest[1:], first + `\` + rest[1:],
		target + "%25", first + "%25" + rest,
		target + "#x", target + "#/x", target + "/#/x", // a fragment, which some servers drop
	}
	for _, c := range []string{"/static", "/status"} {
		ps = append(ps,
			c+"/.."+target, c+"/..;"+target, c+"/..;jsessionid=x"+target, c+";x/.."+target,
			c+"/x/..;/..;"+target,
			c+"/%2e%2e"+target, c+"/%2E%2E"+target, c+"/.%2e"+target, c+"/%2e%2e;"+target,
			c+"/..%2f"+body, c+"/..%2F"+body, c+"%2f..%2f"+body,
			c+"/..%252f"+body, c+"/%252e%252e"+target,
			c+"/..%5c"+body, c+`/..\`+body,
			c+"/%c0%ae%c0%ae"+target) // an overlong UTF-8 "."
	}
	return ps
}

// nginxRecipe is the README's NGINX forward-auth configuration, which the
// main module's proxy tests also run.
const nginxRecipe = "../proxy/testdata/nginx-forward-auth.conf"

const diffHost = "api.example.com"

// diffTable generates the request lines.
func diffTable() []diffRequest {
	var out []diffRequest
	add := func(method, target, host string, header ...string) {
		out = append(out, diffRequest{method: method, target: target, host: host, header: header})
	}
	// /api/users/5: every path trick with every method form; a path that
	// every rule set refuses on its own gets a few method forms only.
	refusedPath := func(p string) bool {
		for _, v := range rulesVariants {
			if contractRefusal(diffRequest{method: "GET", target: p}, v) == "" {
				return false
			}
		}
		return true
	}
	for _, p := range pathTricks("/api/users/5") {
		forms := methodForms
		if refusedPath(p) {
			forms = methodForms[:6] // GET, DELETE, delete, Delete, get, POST + X-HTTP-Method-Override
		}
		for _, f := range forms {
			target := p
			if f.query != "" {
				target += map[bool]string{true: "&", false: "?"}[strings.Contains(p, "?")] + f.query
			}
			out = append(out, diffRequest{method: f.method, target: target, host: diffHost, header: f.header, body: f.body})
		}
	}
	// /admin/users needs admin for every method: the tricks are the path's.
	for _, p := range pathTricks("/admin/users") {
		add("GET", p, diffHost)
		add("DELETE", p, diffHost)
		add("POST", p, diffHost, "X-HTTP-Method-Override: DELETE")
	}
	// The public routes themselves, and the roots of the others.
	for _, p := range []string{"/static/x", "/static", "/static/", "/STATIC/x", "/Static/x", "/static/x;y",
		"/status", "/status/", "/STATUS", "/Status", "/status;x", "/status%2f", "/status?x=1",
		"/admin", "/admin/", "/ADMIN", "/Admin/", "/api/users", "/api/users/", "/API/USERS/"} {
		add("GET", p, diffHost)
		add("get", p, diffHost)
		add("DELETE", p, diffHost)
		add("POST", p, diffHost, "X-HTTP-Method-Override: GET")
	}
	// Host variants, origin and absolute form.
	for _, h := range []string{diffHost, "API.EXAMPLE.COM", diffHost + ".", diffHost + ":8080"} {
		for _, l := range []struct{ method, path string }{
			{"GET", "/admin/users"}, {"DELETE", "/api/users/5"}, {"GET", "/api/users/5"},
			{"GET", "/static/..;/admin/users"}, {"GET", "/ADMIN/users"}, {"DELETE", "/api/users/5/"},
		} {
			add(l.method, l.path, h)
			add(l.method, "http://"+h+l.path, diffHost)
		}
	}
	add("GET", "http://other.example.com/admin/users", diffHost)
	add("GET", "http://"+diffHost+"/static/../admin/users", diffHost)
	add("DELETE", "http://"+diffHost+"//api/users/5", diffHost)
	return out
}

// servedRoute is what an upstream says it served.
type servedRoute struct {
	Upstream string `json:"upstream"`
	Route    string `json:"route"`
	Method   string `json:"method"`
	Path     string `json:"path"`
}

func (s *servedRoute) String() string {
	if s == nil {
		return "nothing"
	}
	return fmt.Sprintf("route %s for %s %q", s.Route, s.Method, s.Path)
}

// exchangeResult is what one exchange got.
type exchangeResult struct {
	status int
	served *servedRoute // nil unless the upstream served a route
	// challenge is the WWW-Authenticate answer: tokenward's own 400 says
	// error="invalid_request".
	challenge string
	body      string
	err       error
}

func (o exchangeResult) String() string {
	if o.err != nil {
		return "error: " + o.err.Error()
	}
	return fmt.Sprintf("%d", o.status)
}

// sendRaw sends raw to addr on a connection of its own (the request says
// Connection: close: some servers close after a 400 anyway) and reads the
// answer. upstream names the app whose answer counts as served.
func sendRaw(addr string, raw []byte, upstream string) exchangeResult {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return exchangeResult{err: err}
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write(raw); err != nil {
		return exchangeResult{err: err}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return exchangeResult{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	o := exchangeResult{status: resp.StatusCode, body: string(body), err: err,
		challenge: resp.Header.Get("WWW-Authenticate")}
	if resp.StatusCode == http.StatusOK && bytes.HasPrefix(bytes.TrimSpace(body), []byte(`{"`)) {
		var s servedRoute
		if json.Unmarshal(body, &s) == nil && s.Upstream == upstream {
			o.served = &s
		} else {
			o.err = fmt.Errorf("200 with a body that is not %s's answer: %.200q", upstream, body)
		}
	}
	return o
}

// tokenward400 tells whether r is tokenward's answer to a request it refuses
// to judge: 400 with an RFC 6750 invalid_request challenge.
func tokenward400(r exchangeResult) bool {
	return r.status == http.StatusBadRequest && r.served == nil &&
		strings.HasPrefix(r.challenge, "Bearer ") && strings.Contains(r.challenge, `error="invalid_request"`)
}

// forEachParallel runs f(0..n-1) on a few goroutines: the servers answer
// some while others wait on the network.
func forEachParallel(n int, f func(i int)) {
	const workers = 6
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// serveOnLoopback serves h on a loopback port with tokenward's server limits.
func serveOnLoopback(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := proxy.NewServer(ln.Addr().String(), h)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// gatewayStyles are the ways a gateway tells forward-auth what it asks about.
var gatewayStyles = []struct {
	name string
	set  func(h http.Header, r diffRequest)
}{
	{"traefik", func(h http.Header, r diffRequest) {
		h["X-Forwarded-Method"] = []string{r.method}
		h["X-Forwarded-Uri"] = []string{r.originForm()}
		h["X-Forwarded-Host"] = []string{r.authority()}
		h["X-Forwarded-Proto"] = []string{"http"}
	}},
	{"nginx", func(h http.Header, r diffRequest) {
		h["X-Original-Method"] = []string{r.method}
		h["X-Original-Uri"] = []string{r.originForm()}
		h["X-Forwarded-Host"] = []string{r.authority()}
	}},
	{"ingress-nginx", func(h http.Header, r diffRequest) {
		h["X-Original-Method"] = []string{r.method}
		h["X-Original-Url"] = []string{"http://" + r.authority() + r.originForm()}
	}},
}

// TestDifferentialRoutes sends a generated table of request lines through
// tokenward, in proxy mode and in forward-auth mode, in front of real
// upstream servers (embedded Tomcat, Flask, Express with method-override,
// Go's ServeMux) that each say which route they served. Whenever tokenward
// lets a request through, the route the upstream served must require no more
// than the client holds; and every line the normalization contract refuses
// must get tokenward's 400. Both with the strict default rules and with the
// options that weaken the contract.
//
// The apps live in testdata/upstreams; an upstream whose runtime is missing
// is skipped with the command that installs it, except in CI (CI set), where
// .ci/run installs them all and a missing one fails. The requests are raw
// bytes on connections of their own, so that no client library tidies a
// path before the servers see it.
func TestDifferentialRoutes(t *testing.T) {
	iss := newIssuer(t)
	validator := newValidator(t, iss)
	tokens := []diffToken{
		{name: "no token"},
		{name: "read:users", token: withScope(t, iss, "read:users"), scopes: []string{"read:users"}},
		{name: "admin", token: withScope(t, iss, "admin"), scopes: []string{"admin"}},
	}
	table := diffTable()
	if len(table) < 60 {
		t.Fatalf("the table has %d lines, want at least 60", len(table))
	}
	t.Logf("%d request lines × %d tokens", len(table), len(tokens))

	// Per rule set: the contract's refusals, and forward-auth's answers,
	// which do not depend on the upstream.
	type ruleSet struct {
		rulesVariant
		rules  *proxy.Rules
		lines  []int    // the lines of table it runs
		refuse []string // by line
		fa     []exchangeResult
	}
	var sets []*ruleSet
	for _, v := range rulesVariants {
		rules, err := proxy.ParseRules([]byte(v.yaml), scopes.Requirement{})
		if err != nil {
			// The other rule sets still run.
			t.Errorf("rule set %s: %v", v.name, err)
			continue
		}
		set := &ruleSet{rulesVariant: v, rules: rules, refuse: make([]string, len(table))}
		for line, r := range table {
			set.refuse[line] = contractRefusal(r, v)
			if v.only == nil || v.only(r) {
				set.lines = append(set.lines, line)
			}
		}
		sets = append(sets, set)
		t.Logf("rule set %s: %d lines", v.name, len(set.lines))
	}
	config := func(set *ruleSet) proxy.Config {
		return proxy.Config{Validator: validator, Rules: set.rules,
			ClaimHeaders: []proxy.ClaimHeader{{Claim: "sub", Header: "X-Auth-Subject"}}}
	}

	// ruleOf says which rule tokenward's matcher applies to a line, for the
	// failure messages.
	ruleOf := func(set *ruleSet, r diffRequest) string {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(r.wire(""))))
		if err != nil {
			return "(request not parsed)"
		}
		route := set.rules.Match(req)
		switch {
		case route.Pattern == "":
			return "no rule: a valid token"
		case route.Public:
			return fmt.Sprintf("%q public", route.Pattern)
		default:
			return fmt.Sprintf("%q needs %s", route.Pattern, route.Required)
		}
	}
	// refused asserts that a line the contract refuses got tokenward's 400
	// (not the upstream's).
	refused := func(t *testing.T, set *ruleSet, mode, upstream string, line int, tok diffToken, tw exchangeResult) {
		t.Helper()
		if why := set.refuse[line]; why != "" && !tokenward400(tw) {
			t.Errorf("%s\n\ttoken %s, %s, upstream %s: tokenward answered %s (rule %s), want its 400 (%s); upstream served %s; body %.120q",
				table[line], tok.name, mode, upstream, tw, ruleOf(set, table[line]), why, tw.served, tw.body)
		}
	}
	// allowed asserts that what the upstream served after tokenward let the
	// request through (tw) needs no more than the token holds.
	allowed := func(t *testing.T, set *ruleSet, mode, upstream string, line int, tok diffToken, tw, up exchangeResult) {
		t.Helper()
		if up.served == nil {
			return
		}
		if n, ok := routeNeeds[up.served.Route]; !ok {
			t.Errorf("%s: upstream %s names an unknown route %q", table[line], upstream, up.served.Route)
		} else if !tok.satisfies(n) {
			t.Errorf("%s\n\ttoken %s, %s, upstream %s: tokenward answered %s (rule %s) and the upstream served %s, which needs %s",
				table[line], tok.name, mode, upstream, tw, ruleOf(set, table[line]), up.served, n)
		}
	}

	// Forward-auth decides without the upstream: ask once per line, token and
	// gateway style.
	faClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: 20 * time.Second}
	t.Cleanup(faClient.CloseIdleConnections)
	// set.fa[faIndex(k, token, style)] answers set.lines[k].
	faIndex := func(k, token, style int) int { return (k*len(tokens)+token)*len(gatewayStyles) + style }
	for _, set := range sets {
		addr := serveOnLoopback(t, mustForwardAuth(t, config(set)))
		set.fa = make([]exchangeResult, len(set.lines)*len(tokens)*len(gatewayStyles))
		forEachParallel(len(set.fa), func(i int) {
			r := table[set.lines[i/(len(tokens)*len(gatewayStyles))]]
			tok, style := tokens[i/len(gatewayStyles)%len(tokens)], gatewayStyles[i%len(gatewayStyles)]
			req, err := http.NewRequest("GET", "http://"+addr+"/auth", nil)
			if err != nil {
				set.fa[i] = exchangeResult{err: err}
				return
			}
			// The gateway passes the client's headers on (not the body), and
			// adds its own.
			for _, h := range r.header {
				name, value, _ := strings.Cut(h, ":")
				req.Header[name] = append(req.Header[name], strings.TrimSpace(value))
			}
			if tok.token != "" {
				req.Header.Set("Authorization", "Bearer "+tok.token)
			}
			style.set(req.Header, r)
			resp, err := faClient.Do(req)
			if err != nil {
				set.fa[i] = exchangeResult{err: err}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			set.fa[i] = exchangeResult{status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate")}
		})
		t.Run("forward-auth refusals/"+set.name, func(t *testing.T) {
			for k, line := range set.lines {
				for j, tok := range tokens {
					for s, style := range gatewayStyles {
						o := set.fa[faIndex(k, j, s)]
						if o.err != nil {
							t.Errorf("%s\n\ttoken %s, forward-auth (%s): %v", table[line], tok.name, style.name, o.err)
						} else if why := set.refuse[line]; why != "" && !tokenward400(o) {
							t.Errorf("%s\n\ttoken %s, forward-auth (%s): tokenward answered %d (rule %s), want its 400 (%s)",
								table[line], tok.name, style.name, o.status, ruleOf(set, table[line]), why)
						}
					}
				}
			}
		})
	}

	upstreams := []struct {
		name  string
		start func(*testing.T) diffUpstream
	}{{"tomcat", startTomcat}, {"flask", startFlask}, {"express", startExpress}, {"go", startGoMux}}
	for _, u := range upstreams {
		t.Run(u.name, func(t *testing.T) {
			t.Parallel()
			up := u.start(t)
			for _, set := range sets {
				t.Run(set.name+"/proxy", func(t *testing.T) {
					p, err := proxy.New("http://"+up.addr, config(set), proxy.UpstreamOptions{})
					if err != nil {
						t.Fatal(err)
					}
					addr := serveOnLoopback(t, p)
					got := make([]exchangeResult, len(set.lines)*len(tokens))
					forEachParallel(len(got), func(i int) {
						got[i] = sendRaw(addr, table[set.lines[i/len(tokens)]].wire(tokens[i%len(tokens)].token), up.name)
					})
					for i, o := range got {
						line, tok := set.lines[i/len(tokens)], tokens[i%len(tokens)]
						if o.err != nil && set.refuse[line] == "" {
							t.Errorf("%s\n\ttoken %s, proxy, upstream %s: %v", table[line], tok.name, up.name, o.err)
							continue
						}
						// Through the proxy, tokenward's answer is the upstream's.
						refused(t, set, "proxy", up.name, line, tok, o)
						allowed(t, set, "proxy", up.name, line, tok, o, o)
					}
				})

				// The README's NGINX recipe for real: NGINX asks forward-auth
				// and passes on to the upstream what it allows.
				t.Run(set.name+"/nginx-recipe", func(t *testing.T) {
					bin := nginxtest.Require(t)
					conf, err := os.ReadFile(nginxRecipe)
					if err != nil {
						t.Fatal(err)
					}
					auth := serveOnLoopback(t, mustForwardAuth(t, config(set)))
					ngx := nginxtest.Start(t, bin, string(conf), nginxtest.Vars{Tokenward: auth, API: up.addr})
					addr := strings.TrimPrefix(ngx.URL, "http://")
					got := make([]exchangeResult, len(set.lines)*len(tokens))
					forEachParallel(len(got), func(i int) {
						got[i] = sendRaw(addr, table[set.lines[i/len(tokens)]].wire(tokens[i%len(tokens)].token), up.name)
					})
					for i, o := range got {
						line, tok := set.lines[i/len(tokens)], tokens[i%len(tokens)]
						// NGINX drops header names with "_" (underscores_in_headers
						// off): neither tokenward nor the upstream sees them.
						passed := table[line]
						passed.header = slices.DeleteFunc(slices.Clone(passed.header), func(h string) bool {
							name, _, _ := strings.Cut(h, ":")
							return strings.Contains(name, "_")
						})
						if why := contractRefusal(passed, set.rulesVariant); why != "" {
							// NGINX may refuse first ("delete" is no method
							// to it); either way the upstream must not serve.
							if o.status != http.StatusBadRequest || o.served != nil {
								t.Errorf("%s\n\ttoken %s, NGINX recipe, upstream %s: answered %s, want 400 from NGINX or tokenward (%s); upstream served %s",
									table[line], tok.name, up.name, o, why, o.served)
							}
						} else if o.err != nil {
							t.Errorf("%s\n\ttoken %s, NGINX recipe, upstream %s: %v", table[line], tok.name, up.name, o.err)
						}
						allowed(t, set, "NGINX recipe", up.name, line, tok, o, o)
					}
				})

				t.Run(set.name+"/forward-auth", func(t *testing.T) {
					// The test is the gateway: what forward-auth allowed goes
					// to the upstream as the client sent it.
					type job struct{ k, line, token int }
					var jobs []job
					for k, line := range set.lines {
						for j := range tokens {
							for s := range gatewayStyles {
								if set.fa[faIndex(k, j, s)].status == http.StatusOK {
									jobs = append(jobs, job{k, line, j})
									break
								}
							}
						}
					}
					got := make([]exchangeResult, len(jobs))
					forEachParallel(len(jobs), func(k int) {
						got[k] = sendRaw(up.addr, table[jobs[k].line].wire(tokens[jobs[k].token].token), up.name)
					})
					for k, jb := range jobs {
						tok := tokens[jb.token]
						if got[k].status == http.StatusOK && got[k].served == nil {
							t.Errorf("%s\n\ttoken %s, forward-auth, upstream %s: %v", table[jb.line], tok.name, up.name, got[k].err)
						}
						for s, style := range gatewayStyles {
							if tw := set.fa[faIndex(jb.k, jb.token, s)]; tw.status == http.StatusOK {
								allowed(t, set, "forward-auth ("+style.name+")", up.name, jb.line, tok, tw, got[k])
							}
						}
					}
				})
			}
		})
	}
}

func mustForwardAuth(tb testing.TB, cfg proxy.Config) *proxy.ForwardAuth {
	tb.Helper()
	fa, err := proxy.NewForwardAuth(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return fa
}
