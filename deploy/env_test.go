package deploy

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// designVariables are the variables of the table in DESIGN.md, the binary's
// contract. The README documents every variable: when ../README.md exists,
// the rows of its table are the list, and this one is only the fallback.
var designVariables = []string{
	"TOKENWARD_ISSUERS",
	"TOKENWARD_AUDIENCES",
	"TOKENWARD_JWKS_URIS",
	"TOKENWARD_ALGORITHMS",
	"TOKENWARD_LEEWAY",
	"TOKENWARD_REQUIRED_SCOPES",
	"TOKENWARD_RULES_FILE",
	"TOKENWARD_MODE",
	"TOKENWARD_UPSTREAM",
	"TOKENWARD_LISTEN_ADDR",
	"TOKENWARD_ADMIN_ADDR",
	"TOKENWARD_CLAIM_HEADERS",
	"TOKENWARD_STRIP_AUTHORIZATION",
	"TOKENWARD_JWKS_REFRESH_INTERVAL",
	"TOKENWARD_JWKS_MIN_REFRESH_INTERVAL",
	"TOKENWARD_MAX_TOKEN_BYTES",
	"TOKENWARD_SHUTDOWN_GRACE",
}

// readmeVariable matches a row of the README's variable table.
var readmeVariable = regexp.MustCompile("(?m)^\\|\\s*`(TOKENWARD_[A-Z0-9_]+)`")

// anyVariable matches a variable's name anywhere in a text.
var anyVariable = regexp.MustCompile(`\bTOKENWARD_[A-Z0-9_]+\b`)

// knownVariables returns the binary's documented variables.
func knownVariables(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "README.md"))
	if errors.Is(err, fs.ErrNotExist) {
		t.Log("../README.md does not exist: checking against DESIGN.md's variables, kept in tokenward_test.go")
		return setOf(designVariables)
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range readmeVariable.FindAllSubmatch(data, -1) {
		names = append(names, string(m[1]))
	}
	if len(names) == 0 {
		t.Log("../README.md has no table row starting with | `TOKENWARD_: checking against DESIGN.md's variables, kept in tokenward_test.go")
		return setOf(designVariables)
	}
	known := setOf(names)
	for _, v := range designVariables {
		if !known[v] {
			t.Logf("note: DESIGN.md's %s is not in the README's table", v)
		}
	}
	return known
}

func setOf(names []string) map[string]bool {
	s := make(map[string]bool, len(names))
	for _, n := range names {
		s[n] = true
	}
	return s
}

// TestTokenwardEnv checks the variables: documented names, well-formed
// values, what the mode requires.
func TestTokenwardEnv(t *testing.T) {
	known := knownVariables(t)
	for _, m := range loadManifests(t) {
		for _, tw := range m.tokenwards() {
			if len(tw.c.EnvFrom) > 0 {
				t.Errorf("%s: envFrom hides variable names from these checks; list each under env", tw.where)
			}
			for _, e := range tw.c.Env {
				if strings.HasPrefix(e.Name, "TOKENWARD_") && !known[e.Name] {
					t.Errorf("%s: %s is not a documented variable", tw.where, e.Name)
				}
			}
			for name, value := range tw.env {
				if check := validators[name]; check != nil {
					if err := check(value); err != nil {
						t.Errorf("%s: %s=%q: %v", tw.where, name, value, err)
					}
				}
			}
			for _, name := range []string{"TOKENWARD_ISSUERS", "TOKENWARD_AUDIENCES"} {
				if tw.env[name] == "" && !tw.refs[name] {
					t.Errorf("%s: %s is required", tw.where, name)
				}
			}
			checkMode(t, tw)
		}
	}
}

// checkMode checks what each mode needs. A proxy is a sidecar here: its
// upstream is on loopback, in its own pod, and no other container of the pod
// offers that port on the pod IP.
func checkMode(t *testing.T, tw *tokenward) {
	t.Helper()
	upstream, hasUpstream := tw.env["TOKENWARD_UPSTREAM"]
	switch tw.get("TOKENWARD_MODE") {
	case "proxy":
		if !hasUpstream {
			t.Errorf("%s: proxy mode needs TOKENWARD_UPSTREAM", tw.where)
			return
		}
		u, err := url.Parse(upstream)
		if err != nil || !isLoopback(u.Hostname()) {
			t.Errorf("%s: TOKENWARD_UPSTREAM %q: a sidecar's upstream is on loopback, so that the API cannot be reached around tokenward", tw.where, upstream)
			return
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		others := 0
		for _, c := range tw.pod.Containers {
			if isTokenward(&c) {
				continue
			}
			others++
			for _, p := range c.Ports {
				if strconv.Itoa(int(p.ContainerPort)) == port {
					t.Errorf("%s: container %q declares the upstream port %s: the API must listen on loopback only", tw.where, c.Name, port)
				}
			}
		}
		if others == 0 {
			t.Errorf("%s: TOKENWARD_UPSTREAM is on loopback but the pod runs no API container", tw.where)
		}
	case "forward-auth":
		if hasUpstream {
			t.Errorf("%s: TOKENWARD_UPSTREAM is not used in forward-auth mode", tw.where)
		}
	}
	if _, ok := tw.env["TOKENWARD_GRPC_ADDR"]; ok && tw.get("TOKENWARD_MODE") != "forward-auth" {
		t.Errorf("%s: TOKENWARD_GRPC_ADDR is refused outside forward-auth mode", tw.where)
	}
}

// validators check the values of the variables, as the binary reads them:
// lists are comma-separated and trimmed.
var validators = map[string]func(string) error{
	"TOKENWARD_ISSUERS":                   checkIssuers,
	"TOKENWARD_AUDIENCES":                 checkList,
	"TOKENWARD_JWKS_URIS":                 checkJWKSURIs,
	"TOKENWARD_ALGORITHMS":                checkAlgorithms,
	"TOKENWARD_LEEWAY":                    checkDuration(false),
	"TOKENWARD_REQUIRED_SCOPES":           checkScopes,
	"TOKENWARD_RULES_FILE":                checkAbsPath,
	"TOKENWARD_MODE":                      checkOneOf("proxy", "forward-auth"),
	"TOKENWARD_UPSTREAM":                  checkUpstream,
	"TOKENWARD_LISTEN_ADDR":               checkAddr,
	"TOKENWARD_ADMIN_ADDR":                checkAddr,
	"TOKENWARD_GRPC_ADDR":                 checkAddr,
	"TOKENWARD_CLAIM_HEADERS":             checkClaimHeaders,
	"TOKENWARD_STRIP_AUTHORIZATION":       checkBool,
	"TOKENWARD_JWKS_REFRESH_INTERVAL":     checkDuration(true),
	"TOKENWARD_JWKS_MIN_REFRESH_INTERVAL": checkDuration(true),
	"TOKENWARD_MAX_TOKEN_BYTES":           checkPositiveInt,
	"TOKENWARD_SHUTDOWN_GRACE":            checkDuration(false),
}

func list(v string) ([]string, error) {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, errors.New("empty list element")
		}
		out = append(out, item)
	}
	return out, nil
}

func checkList(v string) error {
	_, err := list(v)
	return err
}

func checkIssuers(v string) error {
	issuers, err := list(v)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, iss := range issuers {
		if seen[iss] {
			return fmt.Errorf("%s twice", iss)
		}
		seen[iss] = true
		u, err := url.Parse(iss)
		switch {
		case err != nil:
			return err
		case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "":
			return fmt.Errorf("%s is not an issuer URL", iss)
		case u.Scheme == "https":
		case u.Scheme == "http" && isLoopback(u.Hostname()):
		default:
			return fmt.Errorf("%s: issuers are https:// (http:// only on loopback)", iss)
		}
	}
	return nil
}

func checkJWKSURIs(v string) error {
	pairs, err := list(v)
	if err != nil {
		return err
	}
	for _, p := range pairs {
		i := strings.Index(p, "=https://")
		if i < 0 {
			i = strings.Index(p, "=file://")
		}
		if i < 0 {
			i = strings.Index(p, "=http://")
		}
		if i <= 0 {
			return fmt.Errorf("%q is not issuer=url", p)
		}
	}
	return nil
}

func checkAlgorithms(v string) error {
	algs, err := list(v)
	if err != nil {
		return err
	}
	supported := []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
	for _, a := range algs {
		if !slices.Contains(supported, a) {
			return fmt.Errorf("%q is not an asymmetric JWS algorithm", a)
		}
	}
	return nil
}

// checkScopes accepts scopes separated by commas or spaces, each an RFC 6749
// scope-token.
func checkScopes(v string) error {
	scopes := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
	if len(scopes) == 0 {
		return errors.New("no scopes")
	}
	for _, s := range scopes {
		if err := checkScope(s); err != nil {
			return err
		}
	}
	return nil
}

// checkScope checks an RFC 6749 scope-token: 1*( %x21 / %x23-5B / %x5D-7E ).
func checkScope(s string) error {
	if s == "" {
		return errors.New("empty scope")
	}
	for _, r := range s {
		if r < 0x21 || r > 0x7e || r == '"' || r == '\\' {
			return fmt.Errorf("scope %q: not an RFC 6749 scope-token", s)
		}
	}
	return nil
}

func checkAbsPath(v string) error {
	if !path.IsAbs(v) || path.Clean(v) != v {
		return errors.New("not a clean absolute path")
	}
	return nil
}

func checkOneOf(values ...string) func(string) error {
	return func(v string) error {
		if !slices.Contains(values, v) {
			return fmt.Errorf("not one of %v", values)
		}
		return nil
	}
}

func checkUpstream(v string) error {
	u, err := url.Parse(v)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return errors.New("not an http:// or https:// URL")
	}
	return nil
}

func checkAddr(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return errors.New("no port number")
	}
	return nil
}

func checkClaimHeaders(v string) error {
	pairs, err := list(v)
	if err != nil {
		return err
	}
	for _, p := range pairs {
		claim, header, ok := strings.Cut(p, "=")
		if !ok || claim == "" {
			return fmt.Errorf("%q is not claim=Header", p)
		}
		if msgs := validation.IsHTTPHeaderName(header); len(msgs) > 0 {
			return fmt.Errorf("%q: %s", header, strings.Join(msgs, "; "))
		}
	}
	return nil
}

// claimHeaders returns the header names of TOKENWARD_CLAIM_HEADERS,
// canonicalised.
func claimHeaders(v string) []string {
	var out []string
	for p := range strings.SplitSeq(v, ",") {
		if _, h, ok := strings.Cut(strings.TrimSpace(p), "="); ok {
			out = append(out, http.CanonicalHeaderKey(strings.TrimSpace(h)))
		}
	}
	return out
}

func checkBool(v string) error {
	_, err := strconv.ParseBool(v)
	return err
}

func checkPositiveInt(v string) error {
	n, err := strconv.Atoi(v)
	if err == nil && n <= 0 {
		err = errors.New("not positive")
	}
	return err
}

func checkDuration(positive bool) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			return err
		case d < 0, positive && d == 0:
			return errors.New("out of range")
		}
		return nil
	}
}

// TestVariableNamesInText checks every TOKENWARD_* name written anywhere in
// the manifests and their README, comments included: a misspelt name there
// misleads whoever copies it.
func TestVariableNamesInText(t *testing.T) {
	known := knownVariables(t)
	entries, err := os.ReadDir(manifestDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(manifestDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			for _, name := range anyVariable.FindAllString(line, -1) {
				if !known[name] {
					t.Errorf("%s:%d: %s is not a documented variable", e.Name(), i+1, name)
				}
			}
		}
	}
}
