package loadgen

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	r := rand.New(rand.NewPCG(1, 2))
	var vals []int64
	for range 100000 {
		v := int64(r.ExpFloat64() * 2000) // µs
		vals = append(vals, v)
		h.Record(time.Duration(v) * time.Microsecond)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		want := vals[int(q*float64(len(vals)))-1]
		got := int64(h.Quantile(q) / time.Microsecond)
		// The bucket's upper edge: at most 1/64 above, never below.
		if got < want || float64(got) > float64(want)*(1+1.0/subCount)+1 {
			t.Errorf("q%v = %d µs, want %d µs (+1/%d)", q, got, want, subCount)
		}
	}
	if h.Count() != 100000 || h.Max() != time.Duration(vals[len(vals)-1])*time.Microsecond {
		t.Errorf("count %d max %v", h.Count(), h.Max())
	}
	var m Histogram
	m.Merge(&h)
	m.Merge(&h)
	if m.Count() != 200000 || m.Quantile(0.5) != h.Quantile(0.5) {
		t.Errorf("merge: count %d p50 %v, want 200000, %v", m.Count(), m.Quantile(0.5), h.Quantile(0.5))
	}
}

func TestBucketsCoverValues(t *testing.T) {
	for _, v := range []int64{0, 1, 63, 64, 65, 127, 128, 1000, 1 << 20, 1<<36 - 1} {
		i := bucket(v)
		if lowest(i) > v || (i+1 < len(Histogram{}.counts) && lowest(i+1) <= v) {
			t.Errorf("value %d in bucket %d = [%d, %d)", v, i, lowest(i), lowest(i+1))
		}
	}
}

func TestConnReadsEveryFraming(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/len", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) })
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		for range 3 {
			w.Write([]byte("abcd"))
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(503)
	})
	mux.HandleFunc("/deny", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
		w.WriteHeader(401)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c := NewConn(host, 5*time.Second)
	defer c.Close()
	for _, tc := range []struct {
		path   string
		status int
		body   int64
		chal   bool
		retry  bool
	}{
		{"/len", 200, 5, false, false},
		{"/chunked", 200, 12, false, false},
		{"/close", 503, 0, false, true},
		{"/len", 200, 5, false, false}, // redialled after the close
		{"/deny", 401, 0, true, false},
		{"/chunked", 200, 12, false, false},
	} {
		resp, err := c.Do(Request(host, tc.path))
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		if resp.Status != tc.status || resp.BodyBytes != tc.body || resp.Challenge != tc.chal || resp.RetryAfter != tc.retry {
			t.Errorf("%s: %+v, want status %d body %d challenge %v retry-after %v", tc.path, resp, tc.status, tc.body, tc.chal, tc.retry)
		}
	}
}

// A server that stalls once must be charged for every slot scheduled during
// the stall, not for one request: latency counts from the scheduled time.
func TestRunChargesStallsToEverySlot(t *testing.T) {
	release := make(chan struct{})
	var stalled atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stall" && stalled.CompareAndSwap(false, true) {
			<-release
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	const workers = 1 // one connection: the stall holds every later slot back
	conns := []*Conn{NewConn(host, 10*time.Second)}
	defer conns[0].Close()
	hists := make([]Histogram, workers)
	st := Run(context.Background(), Config{Rate: 1000, Duration: 400 * time.Millisecond, Workers: workers}, func(ctx context.Context, w int, slot int64, at time.Time) {
		path := "/"
		if slot == 50 {
			path = "/stall"
			now := time.Now()
			// Released by the next slot's wait below: the stall lasts
			// until the generator is 100 slots behind.
			go func() {
				for time.Since(now) < 100*time.Millisecond {
					time.Sleep(time.Millisecond)
				}
				close(release)
			}()
		}
		if _, err := conns[w].Do(Request(host, path)); err != nil {
			t.Error(err)
		}
		hists[w].Record(time.Since(at))
	})
	if st.Slots != 400 {
		t.Fatalf("sent %d slots, want 400", st.Slots)
	}
	// The ~100 slots scheduled during the 100 ms stall were sent late,
	// and each carries the wait: well over 1% of the records are ≥ 50 ms,
	// where a closed-loop tool would show one slow request in 400.
	if st.Late < 50 {
		t.Errorf("late slots %d, want ≥ 50 (the stall held them)", st.Late)
	}
	if p := hists[0].Quantile(0.9); p < 20*time.Millisecond {
		t.Errorf("p90 %v: the slots held by the stall were not charged for it", p)
	}
}
