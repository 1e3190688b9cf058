package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

// A key set file is read once, by the configuration check, and the key set
// read then is the one served: the file gone after the check changes
// nothing.
func TestKeySetFileReadOnce(t *testing.T) {
	iss := newIssuer(t)
	resp, err := http.Get(iss.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, "jwks.json", string(body))
	env := map[string]string{
		"TOKENWARD_ISSUERS":   iss.URL(),
		"TOKENWARD_AUDIENCES": audience,
		"TOKENWARD_JWKS_URIS": iss.URL() + "=file://" + path,
		"TOKENWARD_MODE":      modeForwardAuth,
	}
	cfg, err := loadConfig(func(k string) string { return env[k] }, forServing)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	g, err := newGateway(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("newGateway read the key set file again: %v", err)
	}
	defer g.close()

	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("X-Forwarded-Method", "GET")
	req.Header.Set("X-Forwarded-Uri", "/api/contacts/")
	req.Header.Set("Authorization", "Bearer "+mint(t, iss, nil))
	rec := httptest.NewRecorder()
	g.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", rec.Code, rec.Body)
	}
}
