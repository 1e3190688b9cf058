package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenward/tokenward/admin"
)

// TestReadyzDependency: /readyz lists a dependency whose check fails as down
// with its fixed problem (never the check's error, which may quote an
// address or a credential), and up again once it answers, without ever
// becoming 503 for it: every replica shares the store, and all of them
// leaving the Service would fail the requests that do not need it. The
// replay store gauge follows the same check.
func TestReadyzDependency(t *testing.T) {
	var down atomic.Bool
	check := func(context.Context) error {
		if down.Load() {
			return errors.New("dial tcp 10.0.0.9:6379: password hunter2 refused")
		}
		return nil
	}
	reg := prometheus.NewRegistry()
	admin.RegisterDPoPReplayStore(reg, check)
	srv := httptest.NewServer(admin.NewHandler(reg, nil, admin.Dependency{Name: "dpop_replay_store", Check: check, Problem: "store down"}))
	t.Cleanup(srv.Close)
	readyz := func() (int, string) {
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		var body struct {
			Ready        bool `json:"ready"`
			Dependencies []struct {
				Name, Error string
				Up          bool
			} `json:"dependencies"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		for _, d := range body.Dependencies {
			b.WriteString(d.Name + " " + map[bool]string{true: "up", false: "down"}[d.Up] + " " + d.Error)
		}
		return resp.StatusCode, b.String()
	}
	gauge := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "tokenward_dpop_replay_store_up" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no tokenward_dpop_replay_store_up")
		return 0
	}
	if code, deps := readyz(); code != 200 || deps != "dpop_replay_store up " || gauge() != 1 {
		t.Errorf("up: /readyz %d %q, gauge %v", code, deps, gauge())
	}
	down.Store(true)
	if code, deps := readyz(); code != 200 || deps != "dpop_replay_store down store down" || gauge() != 0 {
		t.Errorf("down: /readyz %d %q, gauge %v", code, deps, gauge())
	}
	down.Store(false)
	if code, deps := readyz(); code != 200 || deps != "dpop_replay_store up " {
		t.Errorf("back: /readyz %d %q", code, deps)
	}
}
