package redisstore_test

import (
	"context"
	"log"
	"time"

	"github.com/tokenward/tokenward/dpop/redisstore"
)

// Several replicas of an API open the same Redis, so that a proof accepted
// by one is a replay at every other. A Seen error is answered 503, never
// with the proof accepted.
func ExampleOpen() {
	store, err := redisstore.Open("rediss://redis.internal:6380/0", redisstore.Options{
		PasswordFile: "/run/secrets/redis-password", // a mounted secret
		RootCAsFile:  "/etc/tokenward/redis-ca.pem", // the private CA of Redis's certificate
		Timeout:      250 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err) // every configuration problem at once; the password is never shown
	}
	defer store.Close()

	if err := store.Ping(context.Background()); err != nil {
		log.Print("replay store unreachable: not ready: ", err)
	}
}
