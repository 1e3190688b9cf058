package deploy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	yamlv3 "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
)

// rules is the rules file format (proxy.ParseRules), decoded here into a
// struct of its own so that this module does not depend on the main one.
type rules struct {
	Routes []struct {
		Match     string   `yaml:"match"`
		Scopes    []string `yaml:"scopes"`
		AnyScopes []string `yaml:"any_scopes"`
		Public    bool     `yaml:"public"`
	} `yaml:"routes"`
}

// parseRules decodes a rules file as the binary does (the same YAML library,
// unknown fields refused) and checks what the binary checks: patterns valid
// and not conflicting for net/http.ServeMux, scopes well-formed, public
// routes without scopes. It also refuses a second YAML document, which the
// binary would silently ignore.
func parseRules(data string) error {
	var f rules
	dec := yamlv3.NewDecoder(strings.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return err
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document; the binary reads only the first")
	}
	if len(f.Routes) == 0 {
		return errors.New("no routes")
	}
	var errs []error
	mux := http.NewServeMux()
	seen := map[string]bool{}
	for i, r := range f.Routes {
		name := fmt.Sprintf("route %d (%q)", i+1, r.Match)
		if r.Match == "" {
			errs = append(errs, fmt.Errorf("route %d: match is empty", i+1))
			continue
		}
		if seen[r.Match] {
			errs = append(errs, fmt.Errorf("%s: given twice", name))
			continue
		}
		seen[r.Match] = true
		if r.Public && len(r.Scopes)+len(r.AnyScopes) > 0 {
			errs = append(errs, fmt.Errorf("%s: a public route cannot require scopes", name))
		}
		for _, s := range slices.Concat(r.Scopes, r.AnyScopes) {
			if err := checkScope(s); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
		if err := register(mux, r.Match); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// register turns ServeMux's panic on an invalid or conflicting pattern into
// an error.
func register(mux *http.ServeMux, pattern string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	mux.Handle(pattern, http.NotFoundHandler())
	return nil
}

func TestParseRulesIsStrict(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field":      "routes:\n  - match: \"GET /a\"\n    scope: [\"x\"]\n",
		"misspelt key":       "route:\n  - match: \"GET /a\"\n",
		"duplicate key":      "routes:\n  - match: \"GET /a\"\n    match: \"GET /b\"\n",
		"public with scopes": "routes:\n  - match: \"GET /a\"\n    public: true\n    scopes: [\"x\"]\n",
		"bad pattern":        "routes:\n  - match: \"GET a\"\n",
		"conflict":           "routes:\n  - match: \"GET /a/{x}\"\n  - match: \"GET /a/{y}\"\n",
		"bad scope":          "routes:\n  - match: \"GET /a\"\n    scopes: [\"a b\"]\n",
		"second document":    "routes:\n  - match: \"GET /a\"\n---\nroutes: []\n",
		"no routes":          "routes: []\n",
	} {
		if err := parseRules(doc); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
	if err := parseRules("routes:\n  - match: \"GET /a\"\n    scopes: [\"read:a\"]\n  - match: \"GET /status\"\n    public: true\n"); err != nil {
		t.Errorf("valid rules refused: %v", err)
	}
}

// TestTokenwardRules checks that TOKENWARD_RULES_FILE is a file mounted from
// a ConfigMap of the same manifest, and that it parses as the binary parses
// rules.
func TestTokenwardRules(t *testing.T) {
	for _, m := range loadManifests(t) {
		for _, p := range m.pods() {
			tw := tokenwardIn(p.spec)
			if tw == nil {
				continue
			}
			file, ok := tw.env["TOKENWARD_RULES_FILE"]
			if !ok {
				continue
			}
			data, err := mountedConfigMapFile(m, p.namespace, tw, file)
			if err != nil {
				t.Errorf("%s: TOKENWARD_RULES_FILE %s: %v", p.where, file, err)
				continue
			}
			if err := parseRules(data); err != nil {
				t.Errorf("%s: rules in %s do not parse:\n%v", p.where, file, err)
			}
		}
	}
}

// mountedConfigMapFile returns the content of the file at path in the
// container, which must come from a ConfigMap volume of the manifest.
func mountedConfigMapFile(m manifest, ns string, tw *tokenward, file string) (string, error) {
	for _, vm := range tw.c.VolumeMounts {
		var key string
		switch {
		case vm.SubPath != "" && vm.MountPath == file:
			key = vm.SubPath
		case vm.SubPath == "" && strings.HasPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/"):
			key = strings.TrimPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/")
		default:
			continue
		}
		i := slices.IndexFunc(tw.pod.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
		if i < 0 {
			return "", fmt.Errorf("volume %q is not defined", vm.Name)
		}
		src := tw.pod.Volumes[i].ConfigMap
		if src == nil {
			return "", fmt.Errorf("volume %q is not a ConfigMap", vm.Name)
		}
		if len(src.Items) > 0 {
			j := slices.IndexFunc(src.Items, func(it corev1.KeyToPath) bool { return it.Path == key })
			if j < 0 {
				return "", fmt.Errorf("volume %q does not project %s", vm.Name, key)
			}
			key = src.Items[j].Key
		}
		cm, ok := find[*corev1.ConfigMap](m, ns, src.Name)
		if !ok {
			return "", fmt.Errorf("ConfigMap %q is not in %s", src.Name, m.file)
		}
		data, ok := cm.Data[key]
		if !ok {
			return "", fmt.Errorf("ConfigMap %q has no key %q", cm.Name, key)
		}
		return data, nil
	}
	return "", errors.New("no volumeMount provides it")
}
