package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/proxy"
)

const (
	demoAudience = "https://api.example.com"
	demoKeyID    = "tokenward-demo"
	demoRules    = `routes:
  - match: "GET /api/contacts/"
    scopes: ["read:contacts"]
  - match: "POST /api/contacts/"
    any_scopes: ["write:contacts", "admin"]
  - match: "GET /status"
    public: true
`
)

// demo runs the real proxy on loopback in front of a built-in echo API, with
// an embedded test issuer, and prints curl commands with tokens to try, each
// with the status it gets. It runs until ctx ends (Ctrl-C).
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "address of the demo proxy; if the port is busy, a free one is used")
	if err := fs.Parse(args); err != nil {
		return &usageError{"demo: " + err.Error()}
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("demo: unexpected argument %q", fs.Arg(0))}
	}
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		return &usageError{fmt.Sprintf("demo: -addr %q is not host:port", *addr)}
	}

	iss, err := jwkstest.Start(jwkstest.Options{KeyID: demoKeyID})
	if err != nil {
		return fmt.Errorf("demo: starting the test issuer: %w", err)
	}
	defer iss.Close()

	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: starting the echo API: %w", err)
	}
	api := &http.Server{Handler: echoAPI(), ReadHeaderTimeout: 10 * time.Second}
	go api.Serve(apiLn)
	defer api.Close()

	// The same configuration path as the real binary, with the demo's values.
	env := map[string]string{
		"TOKENWARD_ISSUERS":       iss.URL(),
		"TOKENWARD_AUDIENCES":     demoAudience,
		"TOKENWARD_UPSTREAM":      "http://" + apiLn.Addr().String(),
		"TOKENWARD_CLAIM_HEADERS": "sub=X-Auth-Subject,client_id=X-Auth-Client",
		"TOKENWARD_SCOPES_HEADER": "X-Auth-Scopes",
		"TOKENWARD_ACCESS_LOG":    "true",
		"TOKENWARD_LOG_FORMAT":    "text",
	}
	cfg, err := loadConfig(mapGetenv(env), forServing)
	if err != nil {
		return err
	}
	if cfg.rules, err = proxy.ParseRules([]byte(demoRules), cfg.required); err != nil {
		return fmt.Errorf("demo: rules: %w", err)
	}
	log := newLogger(stderr, cfg.LogFormat, cfg.logLevel)
	g, err := newGateway(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer g.close()

	ln, note, err := listenFallback(*addr)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	srv := proxy.NewServer("", g.handler)
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	go srv.Serve(ln)
	defer srv.Close()

	// Print nothing until the proxy has the issuer's keys, so that every
	// printed command gets the status it claims at once.
	set, _ := g.keys.Set(iss.URL())
	kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = set.Key(kctx, demoKeyID)
	cancel()
	if err != nil {
		return fmt.Errorf("demo: the proxy could not load the test issuer's keys: %w", err)
	}

	tries, err := demoTries(iss)
	if err != nil {
		return fmt.Errorf("demo: minting tokens: %w", err)
	}
	printDemo(stdout, note, iss.URL(), ln.Addr().String(), tries)

	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	fmt.Fprintln(stdout, "tokenward demo: stopped.")
	return nil
}

// listenFallback listens on addr, or on a free port of the same host when
// addr's port is taken. note says so.
func listenFallback(addr string) (net.Listener, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, "", nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return nil, "", err
	}
	host, _, _ := net.SplitHostPort(addr)
	ln, err2 := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err2 != nil {
		return nil, "", err
	}
	return ln, fmt.Sprintf("%s is busy, so the demo uses %s.", addr, ln.Addr()), nil
}

// try is one printed command.
type try struct {
	expect int
	why    string
	method string
	path   string
	token  string // "" for none
}

func demoTries(iss *jwkstest.Issuer) ([]try, error) {
	now := time.Now()
	mint := func(extra map[string]any) (string, error) {
		return iss.Mint(iss.Claims(demoAudience, extra))
	}
	reader, err := mint(map[string]any{"sub": "auth0|alice", "client_id": "demo-app", "scope": "openid read:contacts"})
	if err != nil {
		return nil, err
	}
	writer, err := mint(map[string]any{"sub": "auth0|bob", "client_id": "demo-app", "permissions": []string{"write:contacts"}})
	if err != nil {
		return nil, err
	}
	expired, err := mint(map[string]any{"sub": "auth0|alice", "scope": "read:contacts",
		"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()})
	if err != nil {
		return nil, err
	}
	otherAud, err := iss.Mint(iss.Claims("https://other-api.example.com", map[string]any{"sub": "auth0|alice", "scope": "read:contacts"}))
	if err != nil {
		return nil, err
	}
	// A DPoP-bound token (cnf.jkt): a proof is single-use and valid for a
	// minute, which a printed command cannot be, so the demo shows the
	// refusal of the token sent without one.
	key, err := jwkstest.NewProofKey("ES256")
	if err != nil {
		return nil, err
	}
	bound, err := iss.MintDPoP(iss.Claims(demoAudience, map[string]any{"sub": "auth0|alice", "scope": "read:contacts"}), key)
	if err != nil {
		return nil, err
	}
	return []try{
		{200, "a valid token with read:contacts", "GET", "/api/contacts/", reader},
		{401, "the same kind of token, expired an hour ago", "GET", "/api/contacts/", expired},
		{401, "a token for another API (audience https://other-api.example.com)", "GET", "/api/contacts/", otherAud},
		{403, "a valid token without write:contacts or admin (it has read:contacts only)", "POST", "/api/contacts/", reader},
		{200, "a token with write:contacts (in Auth0's permissions claim)", "POST", "/api/contacts/", writer},
		{401, "a DPoP-bound token (cnf.jkt) sent as Bearer, without its proof (RFC 9449: no downgrade)", "GET", "/api/contacts/", bound},
		{401, "no token", "GET", "/api/contacts/", ""},
		{200, "a public route, no token needed", "GET", "/status", ""},
		{400, "a path Tomcat would serve as /api/contacts/ through the public /status rule (;params, then ..)", "GET", "/status/..;/api/contacts/", ""},
	}, nil
}

func printDemo(w io.Writer, note, issuer, addr string, tries []try) {
	base := "http://" + addr
	var b strings.Builder
	fmt.Fprintf(&b, "tokenward demo: the proxy listens on %s, in front of an echo API that answers\n", base)
	b.WriteString("with the method, path and X-Auth-* identity headers it receives.\n")
	if note != "" {
		b.WriteString(note + "\n")
	}
	fmt.Fprintf(&b, "\nTrusted issuer: %s (a test issuer, key ID %q)\n", issuer, demoKeyID)
	fmt.Fprintf(&b, "Audience:       %s\n", demoAudience)
	b.WriteString("Rules:\n")
	for line := range strings.SplitSeq(strings.TrimSpace(demoRules), "\n") {
		b.WriteString("  " + line + "\n")
	}
	b.WriteString("\nTokens are valid for 1h. Paste these into another terminal:\n")
	for _, t := range tries {
		fmt.Fprintf(&b, "\n# expect %d %s: %s\n", t.expect, http.StatusText(t.expect), t.why)
		b.WriteString("curl -i")
		if strings.Contains(t.path, "..") {
			b.WriteString(" --path-as-is") // curl would remove the dot segment itself
		}
		if t.method != http.MethodGet {
			b.WriteString(" -X " + t.method)
		}
		if t.token != "" {
			b.WriteString(" -H 'Authorization: Bearer " + t.token + "'")
		}
		b.WriteString(" '" + base + t.path + "'\n") // quoted: a path may hold ; for the shell
	}
	fmt.Fprintf(&b, "\nSee why a token is refused: TOKENWARD_ISSUERS=%s TOKENWARD_AUDIENCES=%s tokenward inspect TOKEN\n", issuer, demoAudience)
	b.WriteString("Press Ctrl-C to stop.\n")
	io.WriteString(w, b.String())
}

// echoAPI stands for the protected API: it answers with what reached it.
func echoAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		identity := map[string]string{}
		for name, values := range r.Header {
			if strings.HasPrefix(name, "X-Auth-") {
				identity[name] = strings.Join(values, ", ")
			}
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			Method        string            `json:"method"`
			Path          string            `json:"path"`
			Identity      map[string]string `json:"identity"`
			Authorization bool              `json:"authorization_forwarded"`
		}{r.Method, r.URL.Path, identity, r.Header.Get("Authorization") != ""})
	})
}
