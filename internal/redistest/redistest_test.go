package redistest_test

import (
	"context"
	"testing"

	"github.com/tokenward/tokenward/internal/redistest"
)

// TestStopStart: the server answers, refuses while stopped, and answers
// again on the same address after Start.
func TestStopStart(t *testing.T) {
	for name, opts := range map[string]redistest.Options{
		"plain":    {},
		"password": {Password: "pw-redistest"},
		"tls":      {TLS: true, Password: "pw-redistest"},
	} {
		t.Run(name, func(t *testing.T) {
			srv := redistest.New(t, opts)
			c := srv.Client()
			ctx := context.Background()
			if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
			srv.Stop()
			if err := c.Ping(ctx).Err(); err == nil {
				t.Fatal("PING answered while the server is stopped")
			}
			addr := srv.Addr
			srv.Start()
			if srv.Addr != addr {
				t.Fatalf("restarted on %s, want %s", srv.Addr, addr)
			}
			n, err := srv.Client().Exists(ctx, "k").Result()
			if err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatal("the restarted server kept a key: it persists, and outage tests would not see a cold store")
			}
		})
	}
}
