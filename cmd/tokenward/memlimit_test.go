package main

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/middleware"
)

const mib64 = int64(1 << 20)

// TestSoftMemoryLimit: the limit follows the caches' bounds, and the
// container's limit caps it.
func TestSoftMemoryLimit(t *testing.T) {
	required := map[string]string{
		"TOKENWARD_ISSUERS":   "https://tenant.auth0.com/",
		"TOKENWARD_AUDIENCES": "https://api.example.com",
		"TOKENWARD_UPSTREAM":  "http://127.0.0.1:3000",
	}
	const defaultVerified = 100000 * verifiedEntryBytes // under the 64 MiB byte bound
	for _, tc := range []struct {
		name                   string
		env                    map[string]string
		container              int64
		verified, opaqueTokens int64
		limit                  int64
		capped                 bool
	}{
		{
			name:     "defaults",
			verified: defaultVerified,
			limit:    otherMemory + defaultVerified*(100+gcRoomPercent)/100,
		},
		{
			name:      "defaults in a 256 MiB container",
			container: 256 * mib64,
			verified:  defaultVerified,
			limit:     otherMemory + defaultVerified*(100+gcRoomPercent)/100,
		},
		{
			name:      "defaults in a 48 MiB container",
			container: 48 * mib64,
			verified:  defaultVerified,
			limit:     48 * mib64 * containerPercent / 100,
			capped:    true,
		},
		{
			name:     "the byte bound is lower",
			env:      map[string]string{"TOKENWARD_CACHE_MAX_BYTES": "8388608"},
			verified: 8 * mib64,
			limit:    otherMemory + 10*mib64,
		},
		{
			name:     "the entry bound is lower",
			env:      map[string]string{"TOKENWARD_CACHE_SIZE": "1000"},
			verified: 1000 * verifiedEntryBytes,
			limit:    otherMemory + 1000*verifiedEntryBytes/100*(100+gcRoomPercent),
		},
		{
			name:  "no cache",
			env:   map[string]string{"TOKENWARD_CACHE_SIZE": "0"},
			limit: otherMemory,
		},
		{
			name:     "a huge cache",
			env:      map[string]string{"TOKENWARD_CACHE_SIZE": strconv.Itoa(math.MaxInt32), "TOKENWARD_CACHE_MAX_BYTES": strconv.FormatInt(math.MaxInt64, 10)},
			verified: math.MaxInt32 * verifiedEntryBytes,
			limit:    otherMemory + math.MaxInt32*verifiedEntryBytes/100*(100+gcRoomPercent),
		},
		{
			name:         "opaque tokens",
			env:          map[string]string{"TOKENWARD_OPAQUE_TOKENS": "userinfo"},
			verified:     defaultVerified,
			opaqueTokens: 64*mib64 + 100000*refusalEntryBytes, // active answers: the byte bound
			limit:        otherMemory + (defaultVerified+64*mib64+100000*refusalEntryBytes)/100*(100+gcRoomPercent),
		},
		{
			name:         "opaque tokens, refusals not cached",
			env:          map[string]string{"TOKENWARD_OPAQUE_TOKENS": "userinfo", "TOKENWARD_OPAQUE_NEGATIVE_TTL": "0s", "TOKENWARD_OPAQUE_CACHE_SIZE": "1000"},
			verified:     defaultVerified,
			opaqueTokens: 1000 * activeEntryBytes,
			limit:        otherMemory + (defaultVerified+1000*activeEntryBytes)/100*(100+gcRoomPercent),
		},
		{
			name:     "opaque tokens, not cached",
			env:      map[string]string{"TOKENWARD_OPAQUE_TOKENS": "userinfo", "TOKENWARD_OPAQUE_CACHE_SIZE": "0"},
			verified: defaultVerified,
			limit:    otherMemory + defaultVerified/100*(100+gcRoomPercent),
		},
		{
			name:         "opaque tokens in a 128 MiB container",
			env:          map[string]string{"TOKENWARD_OPAQUE_TOKENS": "userinfo"},
			container:    128 * mib64,
			verified:     defaultVerified,
			opaqueTokens: 64*mib64 + 100000*refusalEntryBytes,
			limit:        128 * mib64 * containerPercent / 100,
			capped:       true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(mapGetenv(withDefaults(tc.env, required)), forServing)
			if err != nil {
				t.Fatal(err)
			}
			verified, opaqueTokens := cfg.cacheBounds()
			if verified != tc.verified || opaqueTokens != tc.opaqueTokens {
				t.Errorf("cache bounds %d and %d, want %d and %d", verified, opaqueTokens, tc.verified, tc.opaqueTokens)
			}
			limit, capped := softMemoryLimit(add(verified, opaqueTokens), tc.container)
			// Integer rounding of the percentages: within a few bytes.
			if d := limit - tc.limit; d < -100 || d > 100 || capped != tc.capped {
				t.Errorf("limit %d (capped %v), want %d (capped %v)", limit, capped, tc.limit, tc.capped)
			}
		})
	}
}

// The variables are not bounded above: the sums saturate.
func TestMemoryArithmeticSaturates(t *testing.T) {
	if got := mul(math.MaxInt, verifiedEntryBytes); got != math.MaxInt64 {
		t.Errorf("mul = %d", got)
	}
	if got, _ := softMemoryLimit(math.MaxInt64, 0); got != math.MaxInt64 {
		t.Errorf("limit = %d", got)
	}
	if got, capped := softMemoryLimit(math.MaxInt64, 1<<30); got != (1<<30)/100*containerPercent || !capped {
		t.Errorf("limit = %d, capped %v", got, capped)
	}
}

// TestContainerMemoryLimit reads cgroup files as a container sees them.
func TestContainerMemoryLimit(t *testing.T) {
	const v1Unlimited = "9223372036854771712\n"
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  int64
	}{
		{"no cgroup files", nil, 0},
		{"v2 namespaced, limited", map[string]string{
			"/proc/self/cgroup":         "0::/\n",
			"/sys/fs/cgroup/memory.max": "268435456\n",
		}, 256 * mib64},
		{"v2 namespaced, max", map[string]string{
			"/proc/self/cgroup":         "0::/\n",
			"/sys/fs/cgroup/memory.max": "max\n",
		}, 0},
		{"v2 without /proc", map[string]string{
			"/sys/fs/cgroup/memory.max": "134217728",
		}, 128 * mib64},
		{"v2 whole hierarchy: own cgroup and a lower parent", map[string]string{
			"/proc/self/cgroup": "0::/kubepods.slice/pod1/ctr\n",
			"/sys/fs/cgroup/kubepods.slice/pod1/ctr/memory.max": "max\n",
			"/sys/fs/cgroup/kubepods.slice/pod1/memory.max":     "201326592\n",
			"/sys/fs/cgroup/kubepods.slice/memory.max":          "max\n",
		}, 192 * mib64},
		{"v1, limited", map[string]string{
			"/proc/self/cgroup":                           "12:pids:/\n4:memory:/\n1:name=systemd:/\n",
			"/sys/fs/cgroup/memory/memory.limit_in_bytes": "536870912\n",
		}, 512 * mib64},
		{"v1, unlimited", map[string]string{
			"/proc/self/cgroup":                           "4:memory:/docker/abc\n",
			"/sys/fs/cgroup/memory/memory.limit_in_bytes": v1Unlimited,
		}, 0},
		{"v1, the container's cgroup bind-mounted at the root", map[string]string{
			"/proc/self/cgroup":                           "4:memory:/docker/abc\n",
			"/sys/fs/cgroup/memory/memory.limit_in_bytes": "104857600\n",
		}, 100 * mib64},
		{"v1 whole hierarchy, own cgroup limited", map[string]string{
			"/proc/self/cgroup": "5:cpuacct,memory:/process_api/abc\n",
			"/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes": "314572800\n",
			"/sys/fs/cgroup/memory/process_api/memory.limit_in_bytes":     v1Unlimited,
			"/sys/fs/cgroup/memory/memory.limit_in_bytes":                 v1Unlimited,
		}, 300 * mib64},
		{"hybrid: v1 memory, v2 without it", map[string]string{
			"/proc/self/cgroup":                           "0::/\n4:memory:/\n",
			"/sys/fs/cgroup/memory/memory.limit_in_bytes": "209715200\n",
		}, 200 * mib64},
		{"unreadable values", map[string]string{
			"/proc/self/cgroup":                           "garbage\n0::/../../etc\n",
			"/sys/fs/cgroup/memory.max":                   "lots\n",
			"/sys/fs/cgroup/memory/memory.limit_in_bytes": "-1\n",
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			readFile := func(name string) ([]byte, error) {
				if s, ok := tc.files[name]; ok {
					return []byte(s), nil
				}
				return nil, fs.ErrNotExist
			}
			if got := containerMemoryLimit(readFile); got != tc.want {
				t.Errorf("limit %d, want %d", got, tc.want)
			}
		})
	}
}

// TestSetMemoryLimit: GOMEMLIMIT, even "off", is the operator's and left to
// the runtime; otherwise the limit is set, logged, and restored by the
// function returned.
func TestSetMemoryLimit(t *testing.T) {
	cfg, err := loadConfig(mapGetenv(map[string]string{
		"TOKENWARD_ISSUERS":   "https://tenant.auth0.com/",
		"TOKENWARD_AUDIENCES": "https://api.example.com",
		"TOKENWARD_UPSTREAM":  "http://127.0.0.1:3000",
	}), forServing)
	if err != nil {
		t.Fatal(err)
	}
	noCgroup := func(string) ([]byte, error) { return nil, fs.ErrNotExist }
	prev := debug.SetMemoryLimit(-1)
	for _, v := range []string{"off", "300MiB"} {
		var logs bytes.Buffer
		restore := setMemoryLimit(cfg, mapGetenv(map[string]string{"GOMEMLIMIT": v}), noCgroup, slog.New(slog.NewJSONHandler(&logs, nil)))
		if got := debug.SetMemoryLimit(-1); got != prev {
			t.Errorf("GOMEMLIMIT=%s: the limit changed to %d", v, got)
		}
		restore()
		if l := parseLog(logs.String()); l.str("msg") != "memory limit" || l.str("soft_limit") != v || l.str("from") != "GOMEMLIMIT" {
			t.Errorf("GOMEMLIMIT=%s: log %s", v, logs.String())
		}
	}

	var logs bytes.Buffer
	restore := setMemoryLimit(cfg, mapGetenv(nil), noCgroup, slog.New(slog.NewJSONHandler(&logs, nil)))
	verified, _ := cfg.cacheBounds()
	want, _ := softMemoryLimit(verified, 0)
	if got := debug.SetMemoryLimit(-1); got != want {
		t.Errorf("limit %d, want %d", got, want)
	}
	restore()
	if got := debug.SetMemoryLimit(-1); got != prev {
		t.Errorf("limit %d after restore, want %d", got, prev)
	}
	l := parseLog(logs.String())
	if l.str("msg") != "memory limit" || l.str("soft_limit") != mib(want) || l.str("from") != "cache bounds" || l.str("container_limit") != "none" {
		t.Errorf("log %s", logs.String())
	}
}

// TestMemoryFiguresCoverTheCaches: the verified-token cache's bound assumes
// verifiedEntryBytes per entry; the cache's own estimate for an Auth0
// access token (held to the heap measured by middleware's
// TestCacheEntryBytes) must not exceed it.
func TestMemoryFiguresCoverTheCaches(t *testing.T) {
	iss := newIssuer(t)
	keys, err := jwks.NewRemote(iss.JWKSURL(), jwks.RemoteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(keys.Close)
	v, err := middleware.NewValidator([]middleware.Issuer{{URL: iss.URL(), Keys: keys}}, []string{audience},
		middleware.ValidatorOptions{CacheSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		tok := mint(t, iss, map[string]any{
			"sub":         "auth0|5f7c8ec7c33c6c004bbafe8" + strconv.Itoa(i),
			"aud":         []string{audience, iss.URL() + "userinfo"},
			"azp":         "pYwZ3hQe7rFqkXnC2LmV9sTd",
			"scope":       "openid profile read:contacts",
			"permissions": []string{"read:contacts", "write:contacts"},
		})
		if _, err := v.Validate(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	s := v.CacheStats()
	if perEntry := s.Bytes / int64(s.Entries); perEntry > verifiedEntryBytes || perEntry < verifiedEntryBytes*3/4 {
		t.Errorf("the cache estimates %d bytes per entry: verifiedEntryBytes = %d no longer fits it", perEntry, verifiedEntryBytes)
	}
}

// TestMemoryLimitE2E: the binary sets the limit it logs, and leaves
// GOMEMLIMIT's alone.
func TestMemoryLimitE2E(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	up := echoUpstream(t)
	env := map[string]string{
		"TOKENWARD_ISSUERS":   iss.URL(),
		"TOKENWARD_AUDIENCES": audience,
		"TOKENWARD_UPSTREAM":  up.URL,
	}
	cfg, err := loadConfig(mapGetenv(env), forServing)
	if err != nil {
		t.Fatal(err)
	}
	verified, _ := cfg.cacheBounds()
	want, _ := softMemoryLimit(verified, containerMemoryLimit(os.ReadFile)) // the binary runs in this cgroup
	for _, tc := range []struct {
		gomemlimit string
		limit      int64 // as /metrics says
		logged     string
	}{
		{"", want, mib(want)},
		{"off", math.MaxInt64, "off"},
		{"300MiB", 300 * mib64, "300MiB"},
	} {
		t.Run("GOMEMLIMIT="+tc.gomemlimit, func(t *testing.T) {
			t.Parallel()
			e := env
			if tc.gomemlimit != "" {
				e = withDefaults(map[string]string{"GOMEMLIMIT": tc.gomemlimit}, env)
			}
			srv := serveBinary(t, e)
			srv.stderr.waitLog(t, "memory limit", "soft_limit", tc.logged)
			r := do(t, srv.client, "GET", srv.adminURL+"/metrics", nil)
			var got float64
			for line := range strings.SplitSeq(string(r.body), "\n") {
				if v, ok := strings.CutPrefix(line, "go_gc_gomemlimit_bytes "); ok {
					got, _ = strconv.ParseFloat(v, 64)
				}
			}
			if got != float64(tc.limit) {
				t.Errorf("go_gc_gomemlimit_bytes %v, want %d", got, tc.limit)
			}
		})
	}
}
