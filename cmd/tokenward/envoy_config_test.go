package main

import (
	"strings"
	"testing"
)

// TestEnvoyConfig: the gRPC listener and the request-line mode are
// forward-auth only, each problem named with its variable, all at once.
func TestEnvoyConfig(t *testing.T) {
	base := map[string]string{
		"TOKENWARD_ISSUERS":   "https://a.example.com/",
		"TOKENWARD_AUDIENCES": "https://api.example.com",
		"TOKENWARD_MODE":      "forward-auth",
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string // each a problem; none means accepted
	}{
		{"grpc in forward-auth", map[string]string{"TOKENWARD_GRPC_ADDR": ":9000"}, nil},
		{"request line with prefix", map[string]string{"TOKENWARD_FORWARD_AUTH_ALLOW_REQUEST_LINE": "true",
			"TOKENWARD_FORWARD_AUTH_PATH_PREFIX": "/auth"}, nil},
		{"request line without prefix", map[string]string{"TOKENWARD_FORWARD_AUTH_ALLOW_REQUEST_LINE": "true"}, nil},
		{"proxy mode", map[string]string{"TOKENWARD_MODE": "proxy", "TOKENWARD_UPSTREAM": "http://127.0.0.1:3000",
			"TOKENWARD_GRPC_ADDR": ":9000", "TOKENWARD_FORWARD_AUTH_ALLOW_REQUEST_LINE": "true"},
			[]string{"TOKENWARD_GRPC_ADDR: the gRPC ext_authz listener needs TOKENWARD_MODE=forward-auth",
				"TOKENWARD_FORWARD_AUTH_ALLOW_REQUEST_LINE: only forward-auth reads it"}},
		{"bad address", map[string]string{"TOKENWARD_GRPC_ADDR": "9000"}, []string{`TOKENWARD_GRPC_ADDR: "9000" is not host:port`}},
		{"shared address", map[string]string{"TOKENWARD_GRPC_ADDR": ":8080"}, []string{`TOKENWARD_GRPC_ADDR: ":8080" is also`}},
		{"prefix without the mode", map[string]string{"TOKENWARD_FORWARD_AUTH_PATH_PREFIX": "/auth"},
			[]string{"TOKENWARD_FORWARD_AUTH_PATH_PREFIX: only used with TOKENWARD_FORWARD_AUTH_ALLOW_REQUEST_LINE=true"}},
		{"prefix with a slash at the end", map[string]string{"TOKENWARD_FORWARD_AUTH_ALLOW_REQUEST_LINE": "true",
			"TOKENWARD_FORWARD_AUTH_PATH_PREFIX": "/auth/"}, []string{`TOKENWARD_FORWARD_AUTH_PATH_PREFIX: "/auth/" must be`}},
		{"prefix with a dot segment", map[string]string{"TOKENWARD_FORWARD_AUTH_ALLOW_REQUEST_LINE": "true",
			"TOKENWARD_FORWARD_AUTH_PATH_PREFIX": "/a/../auth"}, []string{`TOKENWARD_FORWARD_AUTH_PATH_PREFIX: "/a/../auth" must be`}},
		{"prefix without a slash", map[string]string{"TOKENWARD_FORWARD_AUTH_ALLOW_REQUEST_LINE": "true",
			"TOKENWARD_FORWARD_AUTH_PATH_PREFIX": "auth"}, []string{`TOKENWARD_FORWARD_AUTH_PATH_PREFIX: "auth" must be`}},
		{"prefix with ;", map[string]string{"TOKENWARD_FORWARD_AUTH_ALLOW_REQUEST_LINE": "true",
			"TOKENWARD_FORWARD_AUTH_PATH_PREFIX": "/auth;x"}, []string{`TOKENWARD_FORWARD_AUTH_PATH_PREFIX: "/auth;x" must be`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := withDefaults(tc.env, base)
			_, err := loadConfig(mapGetenv(env), forServing)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %v\nlacks %q", err, w)
				}
			}
		})
	}
}
