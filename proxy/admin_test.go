package proxy_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenward/tokenward/admin"
	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/proxy"
)

// scrape returns the metric samples of an admin handler, keyed by
// `name{labels}` as the text format writes them.
func scrape(tb testing.TB, adminSrv *httptest.Server) map[string]float64 {
	tb.Helper()
	resp, err := adminSrv.Client().Get(adminSrv.URL + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		tb.Fatalf("/metrics: status %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			tb.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetrics(t *testing.T) {
	iss := newIssuer(t)
	reg := prometheus.NewRegistry()
	refreshes := make(chan jwks.RefreshEvent, 64)
	keys, err := jwks.NewRegistry([]string{iss.URL()}, jwks.RegistryOptions{
		OnRefresh: func(_ []string, e jwks.RefreshEvent) {
			select {
			case refreshes <- e:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(keys.Close)
	m := admin.NewMetrics(reg, keys)
	set, _ := keys.Set(iss.URL())
	v, err := middleware.NewValidator([]middleware.Issuer{{URL: iss.URL(), Keys: set}}, []string{audience}, middleware.ValidatorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	cfg := proxy.Config{Validator: v, Rules: mustRules(t, testRules), Metrics: m}
	srv := startProxy(t, up.URL, cfg, proxy.UpstreamOptions{})
	adminSrv := httptest.NewServer(admin.NewHandler(reg, keys))
	t.Cleanup(adminSrv.Close)

	expired := mint(t, iss, map[string]any{"scope": "api", "exp": time.Now().Add(-time.Hour).Unix()})
	for _, tc := range []struct {
		req  request
		want int
	}{
		{request{path: "/x", token: withScope(t, iss, "api")}, 200},
		{request{path: "/x", token: withScope(t, iss, "api")}, 200},
		{request{path: "/public/x"}, 200},
		{request{path: "/x"}, 401},
		{request{path: "/api/contacts/", token: withScope(t, iss, "api")}, 403},
		{request{path: "/x", token: expired}, 401},
		{request{path: "/x", header: http.Header{"Authorization": {"Bearer a b"}}}, 400},
	} {
		if resp, body := do(t, srv, tc.req); resp.StatusCode != tc.want {
			t.Fatalf("%s: status %d, want %d (%s)", tc.req.path, resp.StatusCode, tc.want, body)
		}
		for len(up.got) > 0 {
			<-up.got
		}
	}
	if e := within(t, refreshes, "a key set refresh"); e.Err != nil {
		t.Fatalf("refresh failed: %v", e.Err)
	}

	got := scrape(t, adminSrv)
	issuer := `issuer="` + iss.URL() + `"`
	for sample, want := range map[string]float64{
		`tokenward_requests_total{outcome="allowed",reason=""}`:                  2,
		`tokenward_requests_total{outcome="public",reason=""}`:                   1,
		`tokenward_requests_total{outcome="denied",reason="no_token"}`:           1,
		`tokenward_requests_total{outcome="denied",reason="insufficient_scope"}`: 1,
		`tokenward_requests_total{outcome="denied",reason="expired"}`:            1,
		`tokenward_requests_total{outcome="denied",reason="invalid_request"}`:    1,
		`tokenward_requests_total{outcome="denied",reason="signature"}`:          0,
		`tokenward_jwks_keys{` + issuer + `}`:                                    1,
		`tokenward_jwks_loaded{` + issuer + `}`:                                  1,
		`tokenward_validation_duration_seconds_count`:                            6,
		`tokenward_upstream_duration_seconds_count`:                              3,
		`tokenward_upstream_errors_total{kind="unreachable"}`:                    0,
	} {
		if v, ok := got[sample]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", sample, v, ok, want)
		}
	}
	if got[`tokenward_jwks_refreshes_total{`+issuer+`,result="success"}`] < 1 {
		t.Errorf("tokenward_jwks_refreshes_total success = %v after a successful fetch", got[`tokenward_jwks_refreshes_total{`+issuer+`,result="success"}`])
	}
	if v, ok := got[`tokenward_jwks_refreshes_total{`+issuer+`,result="failure"}`]; !ok || v != 0 {
		t.Errorf("tokenward_jwks_refreshes_total failure = %v (present %v), want 0", v, ok)
	}
	if _, ok := got[`tokenward_jwks_last_success_age_seconds{`+issuer+`}`]; !ok {
		t.Error("no tokenward_jwks_last_success_age_seconds after a successful fetch")
	}
	for sample := range got {
		if strings.Contains(sample, "/x") || strings.Contains(sample, "test-user") {
			t.Errorf("unbounded label in %s", sample)
		}
	}
}

func TestHealthz(t *testing.T) {
	adminSrv := httptest.NewServer(admin.NewHandler(prometheus.NewRegistry(), nil))
	t.Cleanup(adminSrv.Close)
	resp, body := do(t, adminSrv, request{path: "/healthz"})
	if resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", resp.StatusCode, body)
	}
	// Without a key registry there is nothing to wait for.
	if resp, body := do(t, adminSrv, request{path: "/readyz"}); resp.StatusCode != 200 {
		t.Errorf("/readyz without keys: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, adminSrv, request{method: "POST", path: "/healthz"}); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d, want 405", resp.StatusCode)
	}
}

type readiness struct {
	Ready   bool `json:"ready"`
	Issuers []struct {
		Issuer    string `json:"issuer"`
		Loaded    bool   `json:"loaded"`
		Keys      int    `json:"keys"`
		LastError string `json:"last_error"`
	} `json:"issuers"`
}

func readyz(tb testing.TB, adminSrv *httptest.Server) (int, readiness) {
	tb.Helper()
	resp, body := do(tb, adminSrv, request{path: "/readyz"})
	var r readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		tb.Fatalf("/readyz body %q: %v", body, err)
	}
	return resp.StatusCode, r
}

// TestReadyz: not ready while an issuer has been down since start, ready
// once its keys are loaded. Meanwhile requests with tokens get 503.
func TestReadyz(t *testing.T) {
	iss := newIssuer(t)
	iss.SetDown(true)
	reg := prometheus.NewRegistry()
	keys, err := jwks.NewRegistry([]string{iss.URL()}, jwks.RegistryOptions{
		JWKSURLs: map[string]string{iss.URL(): iss.JWKSURL()},
		Remote:   jwks.RemoteOptions{RefreshInterval: 20 * time.Millisecond, MinRefreshInterval: 5 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(keys.Close)
	// Made after the registry has started fetching: the fetch counts are
	// read from the key sets, so none made before is missed.
	m := admin.NewMetrics(reg, keys)
	set, _ := keys.Set(iss.URL())
	v, err := middleware.NewValidator([]middleware.Issuer{{URL: iss.URL(), Keys: set}}, []string{audience}, middleware.ValidatorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	srv := startProxy(t, up.URL, proxy.Config{Validator: v, Rules: mustRules(t, testRules), Metrics: m}, proxy.UpstreamOptions{})
	adminSrv := httptest.NewServer(admin.NewHandler(reg, keys))
	t.Cleanup(adminSrv.Close)
	ctx := waitCtx(t)

	// Two fetches have arrived while down: the first has failed.
	if err := iss.WaitJWKSRequests(ctx, 2); err != nil {
		t.Fatal(err)
	}
	status, r := readyz(t, adminSrv)
	if status != http.StatusServiceUnavailable || r.Ready || len(r.Issuers) != 1 || r.Issuers[0].Loaded || r.Issuers[0].Issuer != iss.URL() {
		t.Fatalf("/readyz while down: %d %+v, want 503 not ready", status, r)
	}
	if r.Issuers[0].LastError == "" {
		t.Errorf("/readyz while down gives no last_error")
	}
	if resp, body := do(t, adminSrv, request{path: "/healthz"}); resp.StatusCode != 200 {
		t.Errorf("/healthz while down: %d %s", resp.StatusCode, body)
	}
	resp, body := do(t, srv, request{path: "/x", token: withScope(t, iss, "api")})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("request while down: %d (Retry-After %q) %s, want 503", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	up.none(t)
	got := scrape(t, adminSrv)
	issuer := `issuer="` + iss.URL() + `"`
	if got[`tokenward_jwks_loaded{`+issuer+`}`] != 0 || got[`tokenward_jwks_refreshes_total{`+issuer+`,result="failure"}`] < 1 {
		t.Errorf("metrics while down: loaded %v, failures %v", got[`tokenward_jwks_loaded{`+issuer+`}`],
			got[`tokenward_jwks_refreshes_total{`+issuer+`,result="failure"}`])
	}
	if got[`tokenward_requests_total{outcome="denied",reason="keys_unavailable"}`] != 1 {
		t.Errorf("keys_unavailable denials = %v, want 1", got[`tokenward_requests_total{outcome="denied",reason="keys_unavailable"}`])
	}

	// Every fetch that arrives after SetDown(false) succeeds; once the one
	// after it has arrived, the first has been stored.
	iss.SetDown(false)
	n := iss.JWKSRequests()
	if err := iss.WaitJWKSRequests(ctx, n+2); err != nil {
		t.Fatal(err)
	}
	status, r = readyz(t, adminSrv)
	if status != 200 || !r.Ready || !r.Issuers[0].Loaded || r.Issuers[0].Keys != 1 || r.Issuers[0].LastError != "" {
		t.Fatalf("/readyz after recovery: %d %+v, want 200 ready", status, r)
	}
	if resp, body := do(t, srv, request{path: "/x", token: withScope(t, iss, "api")}); resp.StatusCode != 200 {
		t.Errorf("request after recovery: %d %s", resp.StatusCode, body)
	}
	got = scrape(t, adminSrv)
	if got[`tokenward_jwks_loaded{`+issuer+`}`] != 1 || got[`tokenward_jwks_refreshes_total{`+issuer+`,result="success"}`] < 1 {
		t.Errorf("metrics after recovery: loaded %v, successes %v", got[`tokenward_jwks_loaded{`+issuer+`}`],
			got[`tokenward_jwks_refreshes_total{`+issuer+`,result="success"}`])
	}
}
