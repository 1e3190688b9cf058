package denylist_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/tokenward/tokenward/denylist"
	"github.com/tokenward/tokenward/middleware"
)

// ExampleNew revokes one token by its jti, and every session of one user that
// started before a given time. In production Revoked is given to the
// validator: middleware.ValidatorOptions{Revoked: list.Revoked}.
func ExampleNew() {
	dir, err := os.MkdirTemp("", "denylist")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "denylist.json")
	err = os.WriteFile(path, []byte(`{
	  "jti": ["4f1c0d1e-5d0b-4a7e-9b1f-2a1e3f4c5d6e"],
	  "sub": [{"sub": "auth0|123", "before": "2026-11-22T10:00:00Z"}]
	}`), 0o644)
	if err != nil {
		log.Fatal(err)
	}

	list, err := denylist.New(denylist.Options{File: path})
	if err != nil {
		log.Fatal(err)
	}
	if err := list.Start(context.Background()); err != nil {
		log.Fatal(err) // refuse to run without the deny list
	}
	defer list.Close()

	logout := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		claims middleware.Claims
	}{
		{"listed jti", middleware.Claims{ID: "4f1c0d1e-5d0b-4a7e-9b1f-2a1e3f4c5d6e", Subject: "auth0|456"}},
		{"user's old session", middleware.Claims{Subject: "auth0|123", IssuedAt: logout.Add(-time.Hour)}},
		{"user signed in again", middleware.Claims{Subject: "auth0|123", IssuedAt: logout.Add(time.Minute)}},
		{"another user", middleware.Claims{Subject: "auth0|456", IssuedAt: logout.Add(-time.Hour)}},
	} {
		fmt.Printf("%s: revoked=%v\n", tc.name, list.Revoked(&tc.claims))
	}
	fmt.Println("entries:", list.Status().Entries())
	// Output:
	// listed jti: revoked=true
	// user's old session: revoked=true
	// user signed in again: revoked=false
	// another user: revoked=false
	// entries: 2
}
