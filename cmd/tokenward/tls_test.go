package main

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
)

// TestTLSConfig: the TLS variables are checked at start, every problem
// named by its variable: both files or neither, a CA file only with TLS and
// a client auth mode that uses it, files readable and parseable. A CA file
// without TOKENWARD_TLS_CLIENT_AUTH requires client certificates.
func TestTLSConfig(t *testing.T) {
	ca := newTestCA(t, "tokenward test CA")
	p, other := ca.issue(t, "server", false), ca.issue(t, "other", false)
	cert, key := writeFile(t, "tls.crt", string(p.certPEM)), writeFile(t, "tls.key", string(p.keyPEM))
	caFile := writeFile(t, "ca.crt", string(ca.pem))
	env := func(kv ...string) map[string]string {
		m := map[string]string{
			"TOKENWARD_ISSUERS": "https://issuer.example.com/", "TOKENWARD_AUDIENCES": audience,
			"TOKENWARD_MODE": modeForwardAuth,
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	withTLS := func(kv ...string) map[string]string {
		return env(append([]string{"TOKENWARD_TLS_CERT_FILE", cert, "TOKENWARD_TLS_KEY_FILE", key}, kv...)...)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string           // in the error, each; none: no error
		auth tls.ClientAuthType // when no error
	}{
		{"no TLS", env(), nil, tls.NoClientCert},
		{"pair", withTLS(), nil, tls.NoClientCert},
		{"CA file: require by default", withTLS("TOKENWARD_TLS_CLIENT_CA_FILE", caFile), nil, tls.RequireAndVerifyClientCert},
		{"request", withTLS("TOKENWARD_TLS_CLIENT_CA_FILE", caFile, "TOKENWARD_TLS_CLIENT_AUTH", "request"), nil, tls.VerifyClientCertIfGiven},
		{"require", withTLS("TOKENWARD_TLS_CLIENT_CA_FILE", caFile, "TOKENWARD_TLS_CLIENT_AUTH", "require"), nil, tls.RequireAndVerifyClientCert},
		{"explicit none", withTLS("TOKENWARD_TLS_CLIENT_AUTH", "none"), nil, tls.NoClientCert},

		{"certificate without key", env("TOKENWARD_TLS_CERT_FILE", cert), []string{"TOKENWARD_TLS_KEY_FILE is not set"}, 0},
		{"key without certificate", env("TOKENWARD_TLS_KEY_FILE", key), []string{"TOKENWARD_TLS_CERT_FILE is not set"}, 0},
		{"CA file without TLS", env("TOKENWARD_TLS_CLIENT_CA_FILE", caFile), []string{"need TLS on the listener"}, 0},
		{"client auth without TLS", env("TOKENWARD_TLS_CLIENT_AUTH", "none"), []string{"need TLS on the listener"}, 0},
		{"unknown client auth", withTLS("TOKENWARD_TLS_CLIENT_CA_FILE", caFile, "TOKENWARD_TLS_CLIENT_AUTH", "optional"), []string{`TOKENWARD_TLS_CLIENT_AUTH: "optional" is not one of`}, 0},
		{"require without CA", withTLS("TOKENWARD_TLS_CLIENT_AUTH", "require"), []string{"require needs TOKENWARD_TLS_CLIENT_CA_FILE"}, 0},
		{"request without CA", withTLS("TOKENWARD_TLS_CLIENT_AUTH", "request"), []string{"request needs TOKENWARD_TLS_CLIENT_CA_FILE"}, 0},
		{"none with a CA", withTLS("TOKENWARD_TLS_CLIENT_CA_FILE", caFile, "TOKENWARD_TLS_CLIENT_AUTH", "none"), []string{"TOKENWARD_TLS_CLIENT_AUTH: none, but TOKENWARD_TLS_CLIENT_CA_FILE is set"}, 0},
		{"negative interval", withTLS("TOKENWARD_TLS_RELOAD_INTERVAL", "-1s"), []string{"TOKENWARD_TLS_RELOAD_INTERVAL: -1s is negative"}, 0},
		{"missing files", env("TOKENWARD_TLS_CERT_FILE", "/nonexistent/tls.crt", "TOKENWARD_TLS_KEY_FILE", "/nonexistent/tls.key"),
			[]string{"TOKENWARD_TLS_CERT_FILE: stat /nonexistent/tls.crt", "TOKENWARD_TLS_KEY_FILE: stat /nonexistent/tls.key"}, 0},
		{"garbage certificate", env("TOKENWARD_TLS_CERT_FILE", writeFile(t, "bad.crt", "garbage"), "TOKENWARD_TLS_KEY_FILE", key),
			[]string{"TOKENWARD_TLS_CERT_FILE: ", "holds no PEM block"}, 0},
		{"key of another certificate", env("TOKENWARD_TLS_CERT_FILE", cert, "TOKENWARD_TLS_KEY_FILE", writeFile(t, "other.key", string(other.keyPEM))),
			[]string{"TOKENWARD_TLS_CERT_FILE and TOKENWARD_TLS_KEY_FILE", "private key does not match public key"}, 0},
		{"files switched", env("TOKENWARD_TLS_CERT_FILE", key, "TOKENWARD_TLS_KEY_FILE", cert), []string{"TOKENWARD_TLS_CERT_FILE and TOKENWARD_TLS_KEY_FILE"}, 0},
		{"key in the CA file", withTLS("TOKENWARD_TLS_CLIENT_CA_FILE", key), []string{"TOKENWARD_TLS_CLIENT_CA_FILE: ", `"PRIVATE KEY" PEM block`}, 0},
		{"cut CA file", withTLS("TOKENWARD_TLS_CLIENT_CA_FILE", writeFile(t, "cut.crt", string(ca.pem)+string(ca.pem[:40]))), []string{"TOKENWARD_TLS_CLIENT_CA_FILE: ", "cut PEM block after 1"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(mapGetenv(tc.env), forServing)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				got := tls.NoClientCert
				if c.tls != nil {
					got = c.tls.clientAuth
					if c.tlsState == nil || c.tlsState.config.ClientAuth != tc.auth {
						t.Errorf("no state, or its client auth differs: %+v", c.tlsState)
					}
				}
				if got != tc.auth {
					t.Errorf("client auth %v, want %v", got, tc.auth)
				}
				return
			}
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v, want a configuration error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "BEGIN") || strings.Contains(err.Error(), string(p.keyPEM[30:60])) {
				t.Errorf("error quotes file contents:\n%v", err)
			}
		})
	}
}
