package interop_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"
)

// tokenwardBin is the tokenward binary, built once by TestMain from the
// repository root.
var tokenwardBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tokenward-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	tokenwardBin = filepath.Join(dir, "tokenward")
	build := exec.Command("go", "build", "-o", tokenwardBin, "./cmd/tokenward")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building tokenward:", err)
		return 1
	}
	return m.Run()
}

// lockedBuffer keeps a process's output for the failure message.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freeAddr is a loopback address nobody listens on: the test must know
// tokenward's address before starting it, since the resource URI names it.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startTokenward runs the binary with env and waits until /readyz says the
// issuer's keys are loaded. It is killed, by its own PID, at the end of the
// test; its output is printed when the test fails.
func startTokenward(t *testing.T, env map[string]string) {
	t.Helper()
	admin := freeAddr(t)
	env["TOKENWARD_ADMIN_ADDR"] = admin
	cmd := exec.Command(tokenwardBin)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("tokenward's output:\n%s", out)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("tokenward exited at start:\n%s", out)
		case <-time.After(20 * time.Millisecond): // polling a readiness URL, with a deadline
		}
		if time.Now().After(deadline) {
			t.Fatalf("tokenward not ready within 20s:\n%s", out)
		}
	}
}

// tokenSource is what the test's OAuth handler obtains: the test plays the
// authorization server (jwkstest) and the user who consents.
type tokenSource struct{ tok string }

func (s tokenSource) Token() (*oauth2.Token, error) {
	return &oauth2.Token{AccessToken: s.tok, TokenType: "Bearer"}, nil
}

// discovering is an auth.OAuthHandler for the SDK's Streamable HTTP client:
// no token at first; on a 401 or 403 it reads the challenge with the SDK's
// parser, follows resource_metadata with the SDK's protected-resource
// metadata client (oauthex.GetProtectedResourceMetadata, which also checks
// that the document is for the resource asked about), and takes the token
// that the authorization server it found would issue: mint(server, scope).
type discovering struct {
	resource string
	mint     func(authServer, scope string) (string, error)

	mu         sync.Mutex // guards the fields below
	tok        string
	challenges []oauthex.Challenge // every challenge seen, in order
	servers    []string            // authorization_servers found
}

func (d *discovering) TokenSource(context.Context) (oauth2.TokenSource, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.tok == "" {
		return nil, nil
	}
	return tokenSource{d.tok}, nil
}

func (d *discovering) Authorize(ctx context.Context, _ *http.Request, resp *http.Response) error {
	defer resp.Body.Close()
	cs, err := oauthex.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate"))
	if err != nil || len(cs) != 1 || cs[0].Scheme != "bearer" {
		return fmt.Errorf("challenge %q: %v", resp.Header.Values("WWW-Authenticate"), err)
	}
	c := cs[0]
	d.mu.Lock()
	d.challenges = append(d.challenges, c)
	d.mu.Unlock()
	if resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("403 %s, scope %q", c.Params["error"], c.Params["scope"])
	}
	prm, err := oauthex.GetProtectedResourceMetadata(ctx, c.Params["resource_metadata"], d.resource, http.DefaultClient)
	if err != nil {
		return err
	}
	if len(prm.AuthorizationServers) == 0 {
		return errors.New("no authorization server in the metadata")
	}
	tok, err := d.mint(prm.AuthorizationServers[0], strings.Join(prm.ScopesSupported, " "))
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.servers, d.tok = prm.AuthorizationServers, tok
	d.mu.Unlock()
	return nil
}

func (d *discovering) seen() ([]oauthex.Challenge, []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.challenges), slices.Clone(d.servers)
}

// countArgs is the input of the test tool.
type countArgs struct {
	To int `json:"to"`
}

// newMCPServer is an MCP server made with the official Go SDK, over
// Streamable HTTP: one tool, "count", which sends a progress notification
// per step and, after the first, waits until the client has received it
// (received is signalled by the client's progress handler), so that a
// proxy buffering the server-sent-event answer would hang the call.
func newMCPServer(t *testing.T, received <-chan struct{}) *httptest.Server {
	t.Helper()
	server := mcp.NewServer(&mcp.Implementation{Name: "contacts", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "count", Description: "counts to n, reporting progress"},
		func(ctx context.Context, req *mcp.CallToolRequest, in countArgs) (*mcp.CallToolResult, any, error) {
			token := req.Params.GetProgressToken()
			for i := 1; i <= in.To; i++ {
				if token != nil {
					if err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
						ProgressToken: token, Progress: float64(i), Total: float64(in.To)}); err != nil {
						return nil, nil, err
					}
					if i == 1 {
						select {
						case <-received:
						case <-ctx.Done():
							return nil, nil, ctx.Err()
						}
					}
				}
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("counted to %d", in.To)}}}, nil, nil
		})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil))
	t.Cleanup(srv.Close)
	return srv
}

// TestMCPServerBehindTokenward puts the tokenward binary (proxy mode, with
// TOKENWARD_RESOURCE) in front of an MCP server made with the official Go
// SDK, and talks to it with the SDK's client:
//   - without a token the client gets 401, whose resource_metadata the SDK's
//     protected-resource metadata support follows to the authorization
//     server (the test issuer);
//   - with a token for the resource it lists and calls the tool through
//     tokenward, the progress notifications streamed while the call runs;
//   - a token for another resource is refused (401, audience);
//   - a token without the tool's scope gets 403 naming the scope.
func TestMCPServerBehindTokenward(t *testing.T) {
	iss := newIssuer(t)
	received := make(chan struct{}, 1)
	upstream := newMCPServer(t, received)
	addr := freeAddr(t)
	resourceURI := "http://" + addr + "/mcp"
	// The README's rules for an MCP server, as they are shown there.
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte(readmeSnippet(t, "mcp-rules", "yaml")), 0o600); err != nil {
		t.Fatal(err)
	}
	startTokenward(t, map[string]string{
		"TOKENWARD_ISSUERS":       iss.URL(),
		"TOKENWARD_RESOURCE":      resourceURI, // and so the audience
		"TOKENWARD_RESOURCE_NAME": "Contacts MCP",
		"TOKENWARD_UPSTREAM":      upstream.URL,
		"TOKENWARD_LISTEN_ADDR":   addr,
		"TOKENWARD_RULES_FILE":    rules,
		"TOKENWARD_LOG_FORMAT":    "text",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mintFor := func(aud string) func(server, scope string) (string, error) {
		return func(server, scope string) (string, error) {
			if server != iss.URL() {
				return "", fmt.Errorf("authorization server %q, want the test issuer %q", server, iss.URL())
			}
			return iss.Mint(iss.Claims(aud, map[string]any{"scope": scope}))
		}
	}
	connect := func(h *discovering, progress func()) (*mcp.ClientSession, error) {
		client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1.0.0"}, &mcp.ClientOptions{
			ProgressNotificationHandler: func(context.Context, *mcp.ProgressNotificationClientRequest) {
				if progress != nil {
					progress()
				}
			},
		})
		return client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: resourceURI, OAuthHandler: h}, nil)
	}

	t.Run("discover, list and call", func(t *testing.T) {
		h := &discovering{resource: resourceURI, mint: mintFor(resourceURI)}
		// The client handles notifications apart from the call's answer:
		// the later ones may arrive after CallTool returns.
		notified := make(chan struct{}, 16)
		cs, err := connect(h, func() {
			notified <- struct{}{}
			select {
			case received <- struct{}{}:
			default:
			}
		})
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer cs.Close()
		challenges, servers := h.seen()
		if len(challenges) != 1 || challenges[0].Params["resource_metadata"] != "http://"+addr+"/.well-known/oauth-protected-resource/mcp" ||
			challenges[0].Params["error"] != "" {
			t.Errorf("challenges %v, want one bare 401 challenge with the metadata URL", challenges)
		}
		if !slices.Equal(servers, []string{iss.URL()}) {
			t.Errorf("authorization servers %q, want the issuer", servers)
		}
		tools, err := cs.ListTools(ctx, nil)
		if err != nil || len(tools.Tools) != 1 || tools.Tools[0].Name != "count" {
			t.Fatalf("ListTools: %v %v", tools, err)
		}
		params := &mcp.CallToolParams{Name: "count", Arguments: map[string]any{"to": 3}}
		params.SetProgressToken("p1")
		res, err := cs.CallTool(ctx, params)
		if err != nil || res.IsError || len(res.Content) != 1 || res.Content[0].(*mcp.TextContent).Text != "counted to 3" {
			t.Fatalf("CallTool: %+v %v", res, err)
		}
		for n := range 3 {
			select {
			case <-notified:
			case <-time.After(20 * time.Second):
				t.Fatalf("%d progress notifications, want 3", n)
			}
		}
	})

	t.Run("token for another resource", func(t *testing.T) {
		other := "http://" + addr + "/other"
		h := &discovering{resource: resourceURI, mint: mintFor(other)}
		if _, err := connect(h, nil); err == nil {
			t.Fatal("connected with a token for another resource")
		}
		tok, _ := mintFor(other)(iss.URL(), "mcp:tools")
		resp := post(t, resourceURI, tok)
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error_description="audience not accepted"`) {
			t.Errorf("token for %s: %d %q", other, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})

	t.Run("token without the scope", func(t *testing.T) {
		h := &discovering{resource: resourceURI, mint: func(server, _ string) (string, error) {
			return mintFor(resourceURI)(server, "profile")
		}}
		if _, err := connect(h, nil); err == nil {
			t.Fatal("connected with a token without the tool's scope")
		}
		challenges, _ := h.seen()
		if len(challenges) != 2 {
			t.Fatalf("challenges %v, want a 401 then a 403", challenges)
		}
		last := challenges[1].Params
		if last["error"] != "insufficient_scope" || last["scope"] != "mcp:tools" ||
			last["resource_metadata"] != "http://"+addr+"/.well-known/oauth-protected-resource/mcp" {
			t.Errorf("403 challenge %v, want insufficient_scope, scope mcp:tools and the metadata URL", last)
		}
		// Scopes are per endpoint: mcp:tools does not open /admin/mcp.
		tok, _ := mintFor(resourceURI)(iss.URL(), "mcp:tools")
		resp := post(t, "http://"+addr+"/admin/mcp", tok)
		if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 403 || !strings.Contains(ch, `scope="mcp:admin"`) {
			t.Errorf("/admin/mcp with mcp:tools: %d %q, want 403 naming mcp:admin", resp.StatusCode, ch)
		}
	})

	t.Run("metadata document", func(t *testing.T) {
		prm, err := oauthex.GetProtectedResourceMetadata(ctx, "http://"+addr+"/.well-known/oauth-protected-resource/mcp", resourceURI, http.DefaultClient)
		if err != nil {
			t.Fatal(err)
		}
		if prm.ResourceName != "Contacts MCP" || !slices.Equal(prm.ScopesSupported, []string{"mcp:admin", "mcp:tools"}) ||
			!slices.Equal(prm.BearerMethodsSupported, []string{"header"}) {
			t.Errorf("metadata %+v", prm)
		}
	})
}

// readmeSnippet returns the code block of the README between
// <!-- name-snippet --> and <!-- /name-snippet -->.
func readmeSnippet(t *testing.T, name, lang string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	open, end := "<!-- "+name+"-snippet -->\n```"+lang+"\n", "```\n<!-- /"+name+"-snippet -->"
	_, rest, ok := strings.Cut(string(readme), open)
	if !ok {
		t.Fatalf("README.md has no %q", open)
	}
	shown, _, ok := strings.Cut(rest, end)
	if !ok {
		t.Fatalf("README.md has no %q after %q", end, open)
	}
	return shown
}

// post sends an MCP initialize request with tok and returns the answer.
func post(t *testing.T, url, tok string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}
