package denylist_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenward/tokenward/denylist"
	"github.com/tokenward/tokenward/internal/syncbuf"
	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
)

// guard bounds how long a test waits for what should happen at once. It
// never paces a test.
const guard = 10 * time.Second

const audience = "https://api.example.com"

// writeFile replaces path atomically, as the package documentation asks.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// reloads collects OnReload calls for a test to wait on.
type reloads chan error

func (r reloads) hook(err error) { r <- err }

// next waits for the next reload that loaded a list (want nil) or failed
// (want an error), skipping none.
func (r reloads) next(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r:
		return err
	case <-time.After(guard):
		t.Fatalf("no reload within %v", guard)
		return nil
	}
}

func TestParse(t *testing.T) {
	valid := `{"jti":["a","b"],"sub":[{"sub":"auth0|1","before":"2026-11-22T10:00:00Z"}]}`
	for _, tc := range []struct {
		name, list string
		jtis, subs int
		err        string // "" when valid
	}{
		{"valid", valid, 2, 1, ""},
		{"empty object", `{}`, 0, 0, ""},
		{"only jti", ` {"jti":["a"]} `, 1, 0, ""},
		{"null members", `{"jti":null,"sub":null}`, 0, 0, ""},
		{"subject twice", `{"sub":[{"sub":"s","before":"2026-01-01T00:00:00Z"},{"sub":"s","before":"2026-02-01T00:00:00+01:00"}]}`, 0, 1, ""},
		{"empty file", ``, 0, 0, "empty"},
		{"blank file", "\n", 0, 0, "empty"},
		{"array", `["a"]`, 0, 0, "not a JSON object"},
		{"null", `null`, 0, 0, "not a JSON object"},
		{"truncated", `{"jti":["a"`, 0, 0, "not valid"},
		{"unknown member", `{"jtis":["a"]}`, 0, 0, "unknown field"},
		{"unknown member in sub", `{"sub":[{"sub":"s","before":"2026-01-01T00:00:00Z","iss":"x"}]}`, 0, 0, "unknown field"},
		{"jti not a string", `{"jti":[1]}`, 0, 0, "not valid"},
		{"empty jti", `{"jti":[""]}`, 0, 0, "jti[0] is empty"},
		{"sub without sub", `{"sub":[{"before":"2026-01-01T00:00:00Z"}]}`, 0, 0, "has no sub"},
		{"sub without before", `{"sub":[{"sub":"s"}]}`, 0, 0, "no before time"},
		{"before not RFC 3339", `{"sub":[{"sub":"s","before":"22/11/2026"}]}`, 0, 0, "not valid"},
		{"data after the object", `{} {}`, 0, 0, "data after"},
		{"too many entries", `{"jti":["a","b","c","d"]}`, 0, 0, "more than the limit"},
		// encoding/json keeps the last of two members, and matches names
		// case-insensitively: each of these would drop a revocation.
		{"jti twice", `{"jti":["a"],"jti":["b"]}`, 0, 0, `member "jti" appears twice`},
		{"sub twice", `{"sub":[{"sub":"s","before":"2026-01-01T00:00:00Z"}],"sub":[]}`, 0, 0, `member "sub" appears twice`},
		{"JTI after jti", `{"jti":["a"],"JTI":["b"]}`, 0, 0, `member "JTI" is not "jti": member names are case-sensitive`},
		{"JTI alone", `{"JTI":["a"]}`, 0, 0, "case-sensitive"},
		{"Sub", `{"sub":[{"sub":"s","before":"2026-01-01T00:00:00Z"}],"Sub":[]}`, 0, 0, `member "Sub" is not "sub"`},
		{"long s", `{"ſub":[{"sub":"s","before":"2026-01-01T00:00:00Z"}]}`, 0, 0, "case-sensitive"},
		{"sub entry's sub twice", `{"sub":[{"sub":"a","sub":"b","before":"2026-01-01T00:00:00Z"}]}`, 0, 0, `sub[0]: member "sub" appears twice`},
		{"sub entry's Before", `{"sub":[{"sub":"a","before":"2026-01-01T00:00:00Z"},{"sub":"b","before":"2026-01-01T00:00:00Z","Before":"2020-01-01T00:00:00Z"}]}`, 0, 0, `sub[1]: member "Before" is not "before"`},
		{"a jti value like a name", `{"jti":["jti","JTI","sub"]}`, 3, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "denylist.json")
			writeFile(t, path, tc.list)
			l, err := denylist.New(denylist.Options{File: path, MaxEntries: 3})
			if err != nil {
				t.Fatal(err)
			}
			err = l.Reload(context.Background())
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error mentioning %q", err, tc.err)
				}
				if st := l.Status(); st.Loaded || st.ReloadErrors != 1 {
					t.Errorf("status %+v after a bad first list", st)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st := l.Status(); !st.Loaded || st.JTIs != tc.jtis || st.Subjects != tc.subs || st.Entries() != tc.jtis+tc.subs {
				t.Errorf("status %+v, want %d jti and %d sub", st, tc.jtis, tc.subs)
			}
		})
	}
}

func TestRevoked(t *testing.T) {
	before := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "denylist.json")
	writeFile(t, path, `{"jti":["revoked-jti"],"sub":[
		{"sub":"auth0|out","before":"2026-11-22T10:00:00Z"},
		{"sub":"auth0|twice","before":"2026-11-01T00:00:00Z"},
		{"sub":"auth0|twice","before":"2026-11-22T10:00:00Z"}]}`)
	l, err := denylist.New(denylist.Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	if l.Revoked(&middleware.Claims{ID: "revoked-jti"}) {
		t.Fatal("revoked before any list was loaded")
	}
	if err := l.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		claims *middleware.Claims
		want   bool
	}{
		{"listed jti", &middleware.Claims{ID: "revoked-jti", Subject: "auth0|other"}, true},
		{"other jti", &middleware.Claims{ID: "other-jti", Subject: "auth0|other"}, false},
		{"no jti", &middleware.Claims{Subject: "auth0|other", IssuedAt: before}, false},
		{"subject, issued before", &middleware.Claims{Subject: "auth0|out", IssuedAt: before.Add(-time.Second)}, true},
		{"subject, issued at the time", &middleware.Claims{Subject: "auth0|out", IssuedAt: before}, false},
		{"subject, issued after", &middleware.Claims{Subject: "auth0|out", IssuedAt: before.Add(time.Minute)}, false},
		{"subject, no iat", &middleware.Claims{Subject: "auth0|out"}, true},
		{"subject listed twice: the later time", &middleware.Claims{Subject: "auth0|twice", IssuedAt: before.Add(-time.Hour)}, true},
		{"subject of another case", &middleware.Claims{Subject: "AUTH0|OUT"}, false},
		{"nil claims", nil, false},
	} {
		if got := l.Revoked(tc.claims); got != tc.want {
			t.Errorf("%s: Revoked = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// api is a JWT-protected API whose validator asks the deny list.
type api struct {
	iss *jwkstest.Issuer
	url string
}

func newAPI(t *testing.T, list *denylist.List) *api {
	t.Helper()
	iss := jwkstest.NewIssuerWithOptions(jwkstest.Options{Algorithm: "ES256"})
	t.Cleanup(iss.Close)
	keys, err := jwks.NewRemote(iss.JWKSURL(), jwks.RemoteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(keys.Close)
	v, err := middleware.NewValidator([]middleware.Issuer{{URL: iss.URL(), Keys: keys}}, []string{audience},
		middleware.ValidatorOptions{Algorithms: []string{"ES256"}, Revoked: list.Revoked, CacheSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	mw, err := middleware.New(v, middleware.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	t.Cleanup(srv.Close)
	return &api{iss: iss, url: srv.URL}
}

func (a *api) mint(t *testing.T, extra map[string]any) string {
	t.Helper()
	token, err := a.iss.Mint(a.iss.Claims(audience, extra))
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// call returns the status and error_description of a request with token.
func (a *api) call(t *testing.T, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	_, desc, _ := strings.Cut(string(body), `"error_description":"`)
	desc, _, _ = strings.Cut(desc, `"`)
	return resp.StatusCode, desc
}

func TestRevokeByJTIWhileRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "denylist.json")
	writeFile(t, path, `{"jti":[]}`)
	events := make(reloads, 64)
	list, err := denylist.New(denylist.Options{File: path, Interval: 10 * time.Millisecond, OnReload: events.hook})
	if err != nil {
		t.Fatal(err)
	}
	if err := list.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer list.Close()
	if err := events.next(t); err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, list)
	stolen := a.mint(t, map[string]any{"jti": "stolen-token"})
	other := a.mint(t, map[string]any{"jti": "other-token"})
	for _, token := range []string{stolen, other} {
		if status, _ := a.call(t, token); status != http.StatusOK {
			t.Fatalf("before revocation: status %d", status)
		}
	}

	writeFile(t, path, `{"jti":["stolen-token"]}`)
	if err := events.next(t); err != nil { // the poller saw the change
		t.Fatal(err)
	}
	// The stolen token is in the validator's cache: it is refused anyway.
	if status, desc := a.call(t, stolen); status != http.StatusUnauthorized || desc != "token revoked" {
		t.Errorf("revoked token: %d %q, want 401 token revoked", status, desc)
	}
	if status, _ := a.call(t, other); status != http.StatusOK {
		t.Errorf("other token: status %d, want 200", status)
	}

	writeFile(t, path, `{}`)
	if err := events.next(t); err != nil {
		t.Fatal(err)
	}
	if status, _ := a.call(t, stolen); status != http.StatusOK {
		t.Errorf("after removal from the list: status %d, want 200", status)
	}
}

func TestRevokeSubject(t *testing.T) {
	path := filepath.Join(t.TempDir(), "denylist.json")
	writeFile(t, path, `{}`)
	list, err := denylist.New(denylist.Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := list.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, list)
	now := time.Now()
	old := a.mint(t, map[string]any{"sub": "auth0|123", "iat": now.Add(-time.Hour).Unix()})
	noIAT := a.mint(t, map[string]any{"sub": "auth0|123", "iat": nil})
	fresh := a.mint(t, map[string]any{"sub": "auth0|123", "iat": now.Add(-time.Minute).Unix()})
	otherUser := a.mint(t, map[string]any{"sub": "auth0|456", "iat": now.Add(-time.Hour).Unix()})

	// Log auth0|123 out of every session that started before 10 minutes ago.
	writeFile(t, path, fmt.Sprintf(`{"sub":[{"sub":"auth0|123","before":%q}]}`, now.Add(-10*time.Minute).Format(time.RFC3339)))
	if err := list.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"issued before", old, http.StatusUnauthorized},
		{"no iat", noIAT, http.StatusUnauthorized},
		{"issued after (signed in again)", fresh, http.StatusOK},
		{"another user", otherUser, http.StatusOK},
	} {
		if status, _ := a.call(t, tc.token); status != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, status, tc.want)
		}
	}
}

func TestMalformedListKeepsTheOld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "denylist.json")
	writeFile(t, path, `{"jti":["revoked"]}`)
	var logs syncbuf.Buffer
	events := make(reloads, 64)
	list, err := denylist.New(denylist.Options{
		File: path, Interval: 10 * time.Millisecond, OnReload: events.hook,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := list.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer list.Close()
	if err := events.next(t); err != nil {
		t.Fatal(err)
	}
	revoked := &middleware.Claims{ID: "revoked"}

	for n, bad := range []string{`{"jti":["revoked", "new"`, `{"jtis":["new"]}`, `<html>`} {
		writeFile(t, path, bad)
		if err := events.next(t); err == nil {
			t.Fatalf("%q loaded", bad)
		}
		if !list.Revoked(revoked) {
			t.Fatalf("after %q, the old list is no longer enforced", bad)
		}
		st := list.Status()
		if st.ReloadErrors != uint64(n+1) || st.LastError == nil || !st.Loaded || st.JTIs != 1 {
			t.Errorf("status %+v after %d bad lists", st, n+1)
		}
	}
	if !strings.Contains(logs.String(), "reload failed") {
		t.Errorf("failure not logged:\n%s", logs.String())
	}

	// The unchanged bad file is not counted again, whatever the polls.
	if err := list.Reload(context.Background()); err != nil {
		t.Errorf("Reload of the unchanged bad file: %v", err)
	}
	if st := list.Status(); st.ReloadErrors != 3 || st.LastError == nil {
		t.Errorf("status %+v: an unchanged bad file was counted again, or its error forgotten", st)
	}

	writeFile(t, path, `{"jti":["new"]}`)
	if err := events.next(t); err != nil {
		t.Fatal(err)
	}
	if list.Revoked(revoked) || !list.Revoked(&middleware.Claims{ID: "new"}) {
		t.Error("the fixed list is not in force")
	}
	if st := list.Status(); st.LastError != nil || st.ReloadErrors != 3 {
		t.Errorf("status %+v after the fix", st)
	}
}

func TestMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "denylist.json")
	events := make(reloads, 64)
	var logs syncbuf.Buffer
	list, err := denylist.New(denylist.Options{File: path, Interval: 10 * time.Millisecond, OnReload: events.hook,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := list.Start(context.Background()); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Start without the file: %v, want not exist", err)
	}
	defer list.Close()
	if err := events.next(t); err == nil {
		t.Fatal("no error reported")
	}
	// No list is in force yet: the log must not say one stays.
	if out := logs.String(); !strings.Contains(out, "load failed; no list has loaded yet, so nothing is revoked") || strings.Contains(out, "in force") {
		t.Errorf("the failed first load is logged as:\n%s", out)
	}
	// Polling goes on: the file appears and is loaded.
	writeFile(t, path, `{"jti":["a"]}`)
	for {
		if err := events.next(t); err == nil {
			break
		}
	}
	if !list.Revoked(&middleware.Claims{ID: "a"}) {
		t.Error("list not loaded once the file appeared")
	}
}

func TestFileLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "denylist.json")
	writeFile(t, path, `{"jti":["`+strings.Repeat("x", 100)+`"]}`)
	list, err := denylist.New(denylist.Options{File: path, MaxBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	if err := list.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized file: %v", err)
	}
	list, err = denylist.New(denylist.Options{File: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := list.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
}

// TestConfigMapSwap updates the list as the kubelet updates a mounted
// ConfigMap: the file is a link through "..data", a link to a timestamped
// directory, which is replaced by renaming a new link over it.
func TestConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(name, content string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name, "denylist.json"), content)
		if err := os.Symlink(name, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_11_22_10_00_00.1", `{"jti":["a"]}`)
	path := filepath.Join(dir, "denylist.json")
	if err := os.Symlink(filepath.Join("..data", "denylist.json"), path); err != nil {
		t.Fatal(err)
	}
	list, err := denylist.New(denylist.Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := list.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	version("..2026_11_22_10_05_00.2", `{"jti":["b"]}`)
	if err := list.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if list.Revoked(&middleware.Claims{ID: "a"}) || !list.Revoked(&middleware.Claims{ID: "b"}) {
		t.Error("the swapped ConfigMap is not in force")
	}
}

// listServer serves a deny list with an ETag, like an object store.
type listServer struct {
	mu      sync.Mutex // guards body, status
	body    string
	status  int
	full    atomic.Int64 // 200 answers
	notMod  atomic.Int64 // 304 answers
	blocked chan struct{}
}

func (s *listServer) set(status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

func (s *listServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.blocked != nil {
		select {
		case <-s.blocked:
		case <-r.Context().Done():
			return
		}
	}
	s.mu.Lock()
	status, body := s.status, s.body
	s.mu.Unlock()
	if status != http.StatusOK {
		http.Error(w, "failing", status)
		return
	}
	etag := fmt.Sprintf(`"%x"`, sha256.Sum256([]byte(body)))
	if r.Header.Get("If-None-Match") == etag {
		s.notMod.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	s.full.Add(1)
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, body)
}

func TestURLSource(t *testing.T) {
	ls := &listServer{}
	ls.set(http.StatusOK, `{"jti":["a"]}`)
	srv := httptest.NewServer(ls)
	defer srv.Close()
	var logs syncbuf.Buffer
	list, err := denylist.New(denylist.Options{URL: srv.URL + "/denylist.json?X-Amz-Signature=s3cr3t", MaxBytes: 1 << 20, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, b := &middleware.Claims{ID: "a"}, &middleware.Claims{ID: "b"}

	if err := list.Reload(ctx); err != nil || !list.Revoked(a) {
		t.Fatalf("first load: %v", err)
	}
	if err := list.Reload(ctx); err != nil || ls.notMod.Load() != 1 || ls.full.Load() != 1 {
		t.Errorf("unchanged list: %v, %d full answers and %d 304s, want 1 and 1", err, ls.full.Load(), ls.notMod.Load())
	}
	ls.set(http.StatusOK, `{"jti":["b"]}`)
	if err := list.Reload(ctx); err != nil || list.Revoked(a) || !list.Revoked(b) {
		t.Errorf("changed list: %v", err)
	}

	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"server error", http.StatusInternalServerError, "", "status 500"},
		{"not found", http.StatusNotFound, "", "status 404"},
		{"garbage", http.StatusOK, "<html>", "not a JSON object"},
		{"too large", http.StatusOK, `{"jti":["` + strings.Repeat("x", 2<<20) + `"]}`, "limit"},
	} {
		ls.set(tc.status, tc.body)
		err := list.Reload(ctx)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", tc.name, err, tc.want)
		}
		if !list.Revoked(b) {
			t.Errorf("%s: the list in force was dropped", tc.name)
		}
	}
	st := list.Status()
	if st.ReloadErrors != 4 || st.LastError == nil || st.Source != srv.URL+"/denylist.json" {
		t.Errorf("status %+v", st)
	}
	if strings.Contains(logs.String(), "s3cr3t") || strings.Contains(st.LastError.Error(), "s3cr3t") {
		t.Errorf("the URL's query leaked:\n%s", logs.String())
	}
}

func TestURLTimeout(t *testing.T) {
	ls := &listServer{blocked: make(chan struct{})}
	ls.set(http.StatusOK, `{}`)
	srv := httptest.NewServer(ls)
	defer srv.Close()
	defer close(ls.blocked)
	list, err := denylist.New(denylist.Options{URL: srv.URL, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = list.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("got %v, want a timeout", err)
	}
	if elapsed := time.Since(start); elapsed > guard {
		t.Errorf("Reload took %v", elapsed)
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts denylist.Options
		want string
	}{
		{"no source", denylist.Options{}, "no source"},
		{"two sources", denylist.Options{File: "x", URL: "https://example.com/x"}, "both"},
		{"negative interval", denylist.Options{File: "x", Interval: -1}, "negative"},
		{"http URL", denylist.Options{URL: "http://lists.example.com/denylist.json"}, "https"},
		{"relative URL", denylist.Options{URL: "/denylist.json"}, "absolute"},
		{"credentials in the URL", denylist.Options{URL: "https://user:pass@example.com/x"}, "must not have user info"},
	} {
		if _, err := denylist.New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
	if _, err := denylist.New(denylist.Options{URL: "http://127.0.0.1:8080/denylist.json"}); err != nil {
		t.Errorf("loopback http: %v", err)
	}
}

func TestStartClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "denylist.json")
	writeFile(t, path, `{}`)
	list, err := denylist.New(denylist.Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	list.Close() // before Start: nothing to stop
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := list.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := list.Start(ctx); err == nil {
		t.Error("second Start accepted")
	}
	done := make(chan struct{})
	go func() {
		list.Close()
		list.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(guard):
		t.Fatal("Close hangs")
	}
	if st := list.Status(); !st.Loaded || st.LastReload.IsZero() || st.LastCheck.IsZero() {
		t.Errorf("status %+v", st)
	}
}

func TestRevokedAllocations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "denylist.json")
	writeFile(t, path, `{"jti":["a"],"sub":[{"sub":"s","before":"2026-11-22T10:00:00Z"}]}`)
	list, err := denylist.New(denylist.Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := list.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := &middleware.Claims{ID: "b", Subject: "s", IssuedAt: time.Now()}
	if n := testing.AllocsPerRun(100, func() { list.Revoked(c) }); n != 0 {
		t.Errorf("Revoked allocates %v times", n)
	}
}

// BenchmarkRevoked is the deny-list check every validated token pays, with
// a list of 10,000 token IDs and 1,000 subjects.
func BenchmarkRevoked(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"jti":[`)
	for i := range 10000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `"jti-%d"`, i)
	}
	sb.WriteString(`],"sub":[`)
	for i := range 1000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"sub":"auth0|%d","before":"2026-11-22T10:00:00Z"}`, i)
	}
	sb.WriteString(`]}`)
	path := filepath.Join(b.TempDir(), "denylist.json")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	list, err := denylist.New(denylist.Options{File: path})
	if err != nil {
		b.Fatal(err)
	}
	if err := list.Reload(context.Background()); err != nil {
		b.Fatal(err)
	}
	c := &middleware.Claims{ID: "4f1c0d1e-5d0b-4a7e-9b1f-2a1e3f4c5d6e", Subject: "auth0|500", IssuedAt: time.Date(2026, 11, 22, 11, 0, 0, 0, time.UTC)}
	b.ReportAllocs()
	for b.Loop() {
		if list.Revoked(c) {
			b.Fatal("revoked")
		}
	}
}
