package denylist_test

import (
	"context"
	"fmt"
	"log"
	"path/filepath"
	"time"

	"github.com/tokenward/tokenward/denylist"
	"github.com/tokenward/tokenward/middleware"
)

// ExampleNew revokes one token by its jti, and every session of one user that
// started before a given time, with the README's deny list
// (testdata/denylist.json). In production Revoked is given to the
// validator: middleware.ValidatorOptions{Revoked: list.Revoked}.
func ExampleNew() {
	path := filepath.Join("..", "testdata", "denylist.json")
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
		{"listed jti", middleware.Claims{ID: "4f1c0d1e-9a7b-4c1e-8f2a-1b3c5d7e9f00", Subject: "auth0|456"}},
		{"user's old session", middleware.Claims{Subject: "auth0|64a1f0c2e4b5d6a7b8c9d0e1", IssuedAt: logout.Add(-time.Hour)}},
		{"user signed in again", middleware.Claims{Subject: "auth0|64a1f0c2e4b5d6a7b8c9d0e1", IssuedAt: logout.Add(time.Minute)}},
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
	// entries: 3
}
