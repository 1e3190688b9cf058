package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// meshConfigFile holds the extension providers of the Istio recipe, a
// fragment of Istio's mesh config (istiod's Helm values, an IstioOperator's
// spec), not a Kubernetes object.
var meshConfigFile = filepath.Join("istio", "meshconfig.yaml")

// istioManifest is the manifest of the Istio recipe.
const istioManifest = "istio.yaml"

// istioInject is the pod label that asks Istio for a sidecar.
const istioInject = "sidecar.istio.io/inject"

// decodeMeshConfig decodes a document whose only key is meshConfig into
// Istio's MeshConfig, strictly: duplicate keys, unknown or misspelt fields
// and values of the wrong type are errors (Istio's own decoder drops unknown
// fields without a word).
func decodeMeshConfig(data []byte) (*meshv1alpha1.MeshConfig, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil {
		return nil, fmt.Errorf("not a mapping: %w", err)
	}
	if len(top) != 1 || top["meshConfig"] == nil {
		return nil, fmt.Errorf("want exactly one key, meshConfig; got %v", slices.Sorted(maps.Keys(top)))
	}
	mc := new(meshv1alpha1.MeshConfig)
	if err := unmarshalProtoStrict(top["meshConfig"], mc); err != nil {
		return nil, fmt.Errorf("meshConfig: %w", err)
	}
	return mc, nil
}

func loadMeshConfig(t *testing.T) *meshv1alpha1.MeshConfig {
	t.Helper()
	data, err := os.ReadFile(meshConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	mc, err := decodeMeshConfig(data)
	if err != nil {
		t.Fatalf("%s: %v", meshConfigFile, err)
	}
	return mc
}

func TestMeshConfigDecodesStrictly(t *testing.T) {
	mc := loadMeshConfig(t)
	if len(mc.GetExtensionProviders()) == 0 {
		t.Fatalf("%s: no extension providers", meshConfigFile)
	}
}

// TestDecodeIstioIsStrict pins what the Istio decoders refuse: each of these
// passes Istio's own (lenient) decoders while meaning something else.
func TestDecodeIstioIsStrict(t *testing.T) {
	const mesh = `meshConfig:
  extensionProviders:
    - name: x
      envoyExtAuthzHttp:
        service: x.y.svc.cluster.local
        port: 8080
        headersToUpstreamOnAllow: ["x-auth-subject"]
`
	if _, err := decodeMeshConfig([]byte(mesh)); err != nil {
		t.Fatalf("valid mesh config refused: %v", err)
	}
	const policy = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: x
spec:
  selector:
    matchLabels: {a: b}
  action: CUSTOM
  provider:
    name: x
  rules:
    - {}
`
	if _, err := decodeDocument(policy); err != nil {
		t.Fatalf("valid policy refused: %v", err)
	}
	for name, bad := range map[string]struct {
		decode func([]byte) error
		doc    string
	}{
		"mesh: misspelt provider field": {meshDecoder, strings.Replace(mesh, "headersToUpstreamOnAllow", "headersToUpstreamOnAlow", 1)},
		"mesh: wrong type":              {meshDecoder, strings.Replace(mesh, "port: 8080", "port: http", 1)},
		"mesh: duplicate key":           {meshDecoder, strings.Replace(mesh, "port: 8080", "port: 8080\n        port: 9191", 1)},
		"mesh: other top-level key":     {meshDecoder, mesh + "values: {}\n"},
		"mesh: not under meshConfig":    {meshDecoder, strings.Replace(mesh, "meshConfig:", "mesh:", 1)},
		"policy: misspelt spec field":   {docDecoder, strings.Replace(policy, "provider:", "providers:", 1)},
		"policy: unknown action":        {docDecoder, strings.Replace(policy, "CUSTOM", "EXTERNAL", 1)},
		"policy: misspelt rule field":   {docDecoder, strings.Replace(policy, "- {}", "- {form: []}", 1)},
		"policy: no spec":               {docDecoder, policy[:strings.Index(policy, "spec:")]},
	} {
		if err := bad.decode([]byte(bad.doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func meshDecoder(b []byte) error { _, err := decodeMeshConfig(b); return err }
func docDecoder(b []byte) error  { _, err := decodeDocument(string(b)); return err }

// TestIstioRecipe checks that the pieces of the Istio recipe fit: the
// policies, the providers they name, and tokenward behind them.
func TestIstioRecipe(t *testing.T) {
	m := loadIstioManifest(t)
	checkIstio(t, m, loadMeshConfig(t))
}

func loadIstioManifest(t *testing.T) manifest {
	t.Helper()
	ms := loadManifests(t)
	i := slices.IndexFunc(ms, func(m manifest) bool { return m.file == istioManifest })
	if i < 0 {
		t.Fatalf("%s not found", istioManifest)
	}
	return ms[i]
}

// checkIstio checks the Istio recipe:
//   - every CUSTOM policy names an extension provider, matches every request
//     of the pods it selects, and selects API pods that run a sidecar (which
//     enforces it), not tokenward;
//   - every extension provider reaches tokenward in forward-auth mode: the
//     gRPC one its TOKENWARD_GRPC_ADDR port, the HTTP one its listener; a
//     bounded timeout, never failOpen;
//   - the HTTP provider sends what tokenward judges (Authorization, and the
//     original method, URI and host from Envoy's own view of the request)
//     and copies exactly tokenward's identity headers to the API;
//   - an ALLOW policy lets only the API pods' identity ask tokenward.
func checkIstio(t reporter, m manifest, mc *meshv1alpha1.MeshConfig) {
	t.Helper()
	providers := map[string]*meshv1alpha1.MeshConfig_ExtensionProvider{}
	for _, p := range mc.GetExtensionProviders() {
		if p.GetName() == "" || providers[p.GetName()] != nil {
			t.Errorf("%s: extension provider names must be unique and not empty: %q", meshConfigFile, p.GetName())
		}
		providers[p.GetName()] = p
	}

	var apiPods []pod
	custom := 0
	for _, o := range m.objects {
		ap, ok := o.obj.(*securityv1.AuthorizationPolicy)
		if !ok || ap.Spec.GetAction() != securityv1beta1.AuthorizationPolicy_CUSTOM {
			continue
		}
		custom++
		spec := &ap.Spec
		if name := spec.GetProvider().GetName(); providers[name] == nil {
			t.Errorf("%s: provider %q is not an extension provider of %s", o.where, name, meshConfigFile)
		}
		// Rules narrow which requests are checked; none means none is.
		if !slices.ContainsFunc(spec.GetRules(), func(r *securityv1beta1.Rule) bool {
			return len(r.GetFrom())+len(r.GetTo())+len(r.GetWhen()) == 0
		}) {
			t.Errorf("%s: no rule {} matching every request: the requests it does not match reach the API unchecked", o.where)
		}
		sel := spec.GetSelector().GetMatchLabels()
		if len(sel) == 0 || len(spec.GetTargetRefs()) > 0 || spec.GetTargetRef() != nil {
			t.Errorf("%s: select the API's pods with selector.matchLabels", o.where)
			continue
		}
		pods := m.podsSelected(ap.Namespace, labels.SelectorFromSet(sel))
		if len(pods) == 0 {
			t.Errorf("%s: selects no pod template in %s", o.where, m.file)
		}
		for _, p := range pods {
			if tokenwardIn(p.spec) != nil {
				t.Errorf("%s: selects %s, which runs tokenward: tokenward would ask itself", o.where, p.where)
			}
			if p.labels[istioInject] != "true" {
				t.Errorf("%s: %s lacks the label %s: \"true\"; without a sidecar nothing enforces the policy", o.where, p.where, istioInject)
			}
			apiPods = append(apiPods, p)
		}
	}
	if custom == 0 {
		t.Errorf("%s: no AuthorizationPolicy with action CUSTOM", m.file)
	}

	for _, name := range slices.Sorted(maps.Keys(providers)) {
		p := providers[name]
		where := fmt.Sprintf("%s provider %q", meshConfigFile, name)
		switch {
		case p.GetEnvoyExtAuthzGrpc() != nil:
			g := p.GetEnvoyExtAuthzGrpc()
			tw, sp := tokenwardBehind(t, m, where, g.GetService(), g.GetPort())
			if tw != nil {
				addr, ok := tw.env["TOKENWARD_GRPC_ADDR"]
				if !ok || addrPort(addr) != sp.port {
					t.Errorf("%s: port %d reaches tokenward's port %d, not its TOKENWARD_GRPC_ADDR (%q)", where, g.GetPort(), sp.port, addr)
				}
				if sp.svc.AppProtocol == nil || *sp.svc.AppProtocol != "grpc" {
					t.Errorf("%s: Service port %q needs appProtocol: grpc, or Istio does not speak HTTP/2 to it", where, sp.svc.Name)
				}
			}
			checkTimeout(t, where, g.GetTimeout() != nil, g.GetFailOpen())
		case p.GetEnvoyExtAuthzHttp() != nil:
			h := p.GetEnvoyExtAuthzHttp()
			tw, sp := tokenwardBehind(t, m, where, h.GetService(), h.GetPort())
			if tw != nil {
				if listen := addrPort(tw.get("TOKENWARD_LISTEN_ADDR")); sp.port != listen {
					t.Errorf("%s: port %d reaches tokenward's port %d, not its listener (%d)", where, h.GetPort(), sp.port, listen)
				}
				checkHTTPProvider(t, where, h, tw)
			}
			checkTimeout(t, where, h.GetTimeout() != nil, h.GetFailOpen())
		default:
			t.Errorf("%s: neither envoyExtAuthzGrpc nor envoyExtAuthzHttp", where)
		}
	}

	checkTokenwardCallers(t, m, apiPods)
}

func checkTimeout(t reporter, where string, hasTimeout, failOpen bool) {
	t.Helper()
	if !hasTimeout {
		t.Errorf("%s: set a timeout; Istio's default (600s) holds every request on a hung tokenward", where)
	}
	if failOpen {
		t.Errorf("%s: failOpen lets every request through when tokenward cannot answer", where)
	}
}

// servicePortRef is a Service port and the container port it reaches.
type servicePortRef struct {
	svc  *corev1.ServicePort
	port int32 // container port
}

// tokenwardBehind returns the tokenward container (in forward-auth mode)
// that a provider's service and port reach, with the port it reaches.
func tokenwardBehind(t reporter, m manifest, where, service string, port uint32) (*tokenward, servicePortRef) {
	t.Helper()
	// [<Namespace>/]<Hostname>, the hostname fully qualified.
	host := service
	if _, h, ok := strings.Cut(service, "/"); ok {
		host = h
	}
	if !strings.HasSuffix(host, ".svc.cluster.local") {
		t.Errorf("%s: service %q: name the Service by its full name, <name>.<namespace>.svc.cluster.local", where, service)
		return nil, servicePortRef{}
	}
	name, ns := serviceHost(host, "")
	svc, ok := find[*corev1.Service](m, ns, name)
	if !ok {
		t.Errorf("%s: service %q is no Service of %s", where, service, m.file)
		return nil, servicePortRef{}
	}
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return uint32(p.Port) == port })
	if i < 0 {
		t.Errorf("%s: port %d is not a port of Service %q", where, port, svc.Name)
		return nil, servicePortRef{}
	}
	sp := &svc.Spec.Ports[i]
	var tw *tokenward
	var ref servicePortRef
	for _, p := range m.podsSelected(svc.Namespace, labels.SelectorFromSet(svc.Spec.Selector)) {
		tw = tokenwardIn(p.spec)
		if tw == nil || tw.get("TOKENWARD_MODE") != "forward-auth" {
			t.Errorf("%s: Service %q selects %s, which does not run tokenward in forward-auth mode", where, svc.Name, p.where)
			return nil, servicePortRef{}
		}
		c, cp := resolvePort(p.spec, sp.TargetPort)
		if cp == nil || c != tw.c {
			t.Errorf("%s: Service %q port %d does not reach tokenward's container", where, svc.Name, port)
			return nil, servicePortRef{}
		}
		ref = servicePortRef{svc: sp, port: cp.ContainerPort}
	}
	if tw == nil {
		t.Errorf("%s: Service %q selects no pods", where, svc.Name)
	}
	return tw, ref
}

// originalRequestHeaders are what tokenward judges in forward-auth mode, each
// with the Envoy command operator that gives the client's own value.
var originalRequestHeaders = map[string]string{
	"x-forwarded-method": "%REQ(:METHOD)%",
	"x-forwarded-uri":    "%REQ(:PATH)%",
	"x-forwarded-host":   "%REQ(:AUTHORITY)%",
}

// checkHTTPProvider checks what Envoy's HTTP ext_authz sends tokenward and
// what it copies from tokenward's answer.
func checkHTTPProvider(t reporter, where string, h *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider, tw *tokenward) {
	t.Helper()
	// The deprecated includeHeadersInCheck is read only without
	// includeRequestHeadersInCheck, which is required below.
	include := h.GetIncludeRequestHeadersInCheck()
	if !slices.ContainsFunc(include, func(p string) bool { return istioHeaderMatch(p, "authorization") }) {
		t.Errorf("%s: includeRequestHeadersInCheck must list authorization", where)
	}
	// A client's copy of another gateway's original-request header would
	// reach tokenward beside Envoy's and make it refuse (400), or, for
	// X-Forwarded-*, be replaced; none is needed.
	for _, name := range []string{"x-original-method", "x-original-uri", "x-original-url", "x-forwarded-method", "x-forwarded-uri", "x-forwarded-host"} {
		if slices.ContainsFunc(include, func(p string) bool { return istioHeaderMatch(p, name) }) {
			t.Errorf("%s: includeRequestHeadersInCheck passes the client's %s to tokenward", where, name)
		}
	}
	added := map[string]string{}
	for k, v := range h.GetIncludeAdditionalHeadersInCheck() {
		added[strings.ToLower(k)] = v
	}
	for name, op := range originalRequestHeaders {
		v, ok := added[name]
		switch {
		case !ok && name == "x-forwarded-host":
			// Envoy sends the original Host as the question's own.
		case !ok:
			t.Errorf("%s: includeAdditionalHeadersInCheck lacks %s: %q; tokenward refuses a question without it", where, name, op)
		case v != op:
			t.Errorf("%s: includeAdditionalHeadersInCheck %s is %q, want %q (the client's request, as Envoy sees it)", where, name, v, op)
		}
	}
	if tw.env["TOKENWARD_FORWARD_AUTH_ALLOW_REQUEST_LINE"] == "true" || h.GetPathPrefix() != "" {
		t.Errorf("%s: with the original-request headers sent, leave the request-line mode and pathPrefix off", where)
	}

	// What Envoy copies to the API equals what tokenward sets: a header
	// tokenward sends but Envoy does not copy leaves the client's copy in
	// place; one Envoy copies that tokenward never sends is noise, or a
	// pattern that lets tokenward's other headers through.
	want := identityHeaders(tw)
	var got []string
	for _, p := range h.GetHeadersToUpstreamOnAllow() {
		if strings.Contains(p, "*") {
			t.Errorf("%s: headersToUpstreamOnAllow %q: list tokenward's identity headers exactly", where, p)
		}
		got = append(got, http.CanonicalHeaderKey(p))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s: headersToUpstreamOnAllow %v, want tokenward's identity headers %v (TOKENWARD_CLAIM_HEADERS, TOKENWARD_SCOPES_HEADER)", where, got, want)
	}
}

// identityHeaders are the headers tokenward sets on an allowed request,
// canonical and sorted.
func identityHeaders(tw *tokenward) []string {
	out := claimHeaders(tw.get("TOKENWARD_CLAIM_HEADERS"))
	if s := tw.env["TOKENWARD_SCOPES_HEADER"]; s != "" {
		out = append(out, http.CanonicalHeaderKey(s))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// istioHeaderMatch matches a header name against an Istio header pattern:
// exact, "prefix*" or "*suffix", case-insensitive (Istio's matchers ignore
// case).
func istioHeaderMatch(pattern, name string) bool {
	pattern, name = strings.ToLower(pattern), strings.ToLower(name)
	switch {
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(name, pattern[1:])
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(name, pattern[:len(pattern)-1])
	}
	return pattern == name
}

// checkTokenwardCallers checks that tokenward's listeners answer only the
// API pods' sidecars: an ALLOW policy selects tokenward's pods, and every rule
// opening a listener port names source principals, which include the
// service account of every API pod (or those pods could not ask, and every
// request would be refused).
func checkTokenwardCallers(t reporter, m manifest, apiPods []pod) {
	t.Helper()
	var want []string
	for _, p := range apiPods {
		sa := p.spec.ServiceAccountName
		if sa == "" || sa == "default" {
			t.Errorf("%s: give the API pods a service account of their own: tokenward's ALLOW policy names it", p.where)
			continue
		}
		if _, ok := find[*corev1.ServiceAccount](m, p.namespace, sa); !ok {
			t.Errorf("%s: ServiceAccount %q is not in %s", p.where, sa, m.file)
		}
		want = append(want, fmt.Sprintf("cluster.local/ns/%s/sa/%s", p.namespace, sa))
	}
	for _, tw := range m.tokenwards() {
		ports := []string{strconv.Itoa(int(addrPort(tw.get("TOKENWARD_LISTEN_ADDR"))))}
		if addr, ok := tw.env["TOKENWARD_GRPC_ADDR"]; ok {
			ports = append(ports, strconv.Itoa(int(addrPort(addr))))
		}
		var pd *pod
		for _, p := range m.pods() {
			if p.spec == tw.pod {
				pd = &p
			}
		}
		if pd == nil {
			continue
		}
		if pd.labels[istioInject] != "true" {
			t.Errorf("%s: lacks the label %s: \"true\"; without a sidecar no policy says who may ask", tw.where, istioInject)
		}
		guarded := false
		for _, o := range m.objects {
			ap, ok := o.obj.(*securityv1.AuthorizationPolicy)
			if !ok || ap.Namespace != pd.namespace || ap.Spec.GetAction() != securityv1beta1.AuthorizationPolicy_ALLOW {
				continue
			}
			sel := ap.Spec.GetSelector().GetMatchLabels()
			if len(sel) == 0 || !labels.SelectorFromSet(sel).Matches(labels.Set(pd.labels)) {
				continue
			}
			guarded = true
			for i, r := range ap.Spec.GetRules() {
				if !opensAny(r, ports) {
					continue
				}
				var principals []string
				for _, f := range r.GetFrom() {
					principals = append(principals, f.GetSource().GetPrincipals()...)
				}
				if len(principals) == 0 || len(r.GetFrom()) != 1 || slices.ContainsFunc(principals, func(p string) bool { return strings.Contains(p, "*") }) {
					t.Errorf("%s: rule %d opens tokenward's listener (%v) without naming the callers' principals exactly", o.where, i+1, ports)
					continue
				}
				for _, w := range want {
					if !slices.Contains(principals, w) {
						t.Errorf("%s: rule %d does not allow %s, the API pods' identity: their sidecars could not ask tokenward", o.where, i+1, w)
					}
				}
			}
		}
		if !guarded {
			t.Errorf("%s: no ALLOW AuthorizationPolicy selects tokenward: anyone in the mesh can ask it about a token and read the identity", tw.where)
		}
	}
}

// opensAny reports whether an ALLOW rule lets requests to any of ports
// through: a rule without to.operation.ports applies to every port.
func opensAny(r *securityv1beta1.Rule, ports []string) bool {
	if len(r.GetTo()) == 0 {
		return true
	}
	for _, to := range r.GetTo() {
		op := to.GetOperation()
		if len(op.GetPorts()) == 0 && len(op.GetNotPorts()) == 0 {
			return true
		}
		for _, p := range ports {
			if slices.Contains(op.GetPorts(), p) || len(op.GetNotPorts()) > 0 && !slices.Contains(op.GetNotPorts(), p) {
				return true
			}
		}
	}
	return false
}

// addrPort returns the port of a host:port address, or 0.
func addrPort(addr string) int32 {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return 0
	}
	return int32(n)
}

// TestCheckIstioCatches pins the Istio checks: each mutation of the shipped
// recipe must be caught.
func TestCheckIstioCatches(t *testing.T) {
	policy := func(m manifest, name string) *securityv1beta1.AuthorizationPolicy {
		ap, ok := find[*securityv1.AuthorizationPolicy](m, "contacts", name)
		if !ok {
			t.Fatalf("AuthorizationPolicy %s not found", name)
		}
		return &ap.Spec
	}
	provider := func(mc *meshv1alpha1.MeshConfig, name string) *meshv1alpha1.MeshConfig_ExtensionProvider {
		i := slices.IndexFunc(mc.GetExtensionProviders(), func(p *meshv1alpha1.MeshConfig_ExtensionProvider) bool { return p.GetName() == name })
		if i < 0 {
			t.Fatalf("provider %s not found", name)
		}
		return mc.GetExtensionProviders()[i]
	}
	httpP := func(mc *meshv1alpha1.MeshConfig) *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider {
		return provider(mc, "tokenward-http").GetEnvoyExtAuthzHttp()
	}
	grpcP := func(mc *meshv1alpha1.MeshConfig) *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider {
		return provider(mc, "tokenward-grpc").GetEnvoyExtAuthzGrpc()
	}
	deployment := func(m manifest, name string) pod {
		for _, p := range m.pods() {
			if strings.Contains(p.where, "Deployment "+name+")") {
				return p
			}
		}
		t.Fatalf("Deployment %s not found", name)
		return pod{}
	}
	setEnv := func(m manifest, name, value string) {
		c := tokenwardIn(deployment(m, "tokenward").spec).c
		i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
		switch {
		case i < 0:
			c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
		case value == "":
			c.Env = slices.Delete(c.Env, i, i+1)
		default:
			c.Env[i].Value = value
		}
	}
	for name, mutate := range map[string]func(m manifest, mc *meshv1alpha1.MeshConfig){
		"unknown provider": func(m manifest, _ *meshv1alpha1.MeshConfig) {
			policy(m, "contacts-api-tokenward").GetProvider().Name = "tokenward"
		},
		"no rules": func(m manifest, _ *meshv1alpha1.MeshConfig) {
			policy(m, "contacts-api-tokenward").Rules = nil
		},
		"narrowed rule": func(m manifest, _ *meshv1alpha1.MeshConfig) {
			policy(m, "contacts-api-tokenward").Rules[0].To = []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Paths: []string{"/api/*"}}}}
		},
		"selects nothing": func(m manifest, _ *meshv1alpha1.MeshConfig) {
			policy(m, "contacts-api-tokenward").GetSelector().MatchLabels = map[string]string{"app.kubernetes.io/name": "contacts"}
		},
		"selects tokenward": func(m manifest, _ *meshv1alpha1.MeshConfig) {
			policy(m, "contacts-api-tokenward").GetSelector().MatchLabels = map[string]string{"app.kubernetes.io/name": "tokenward"}
		},
		"API without sidecar": func(m manifest, _ *meshv1alpha1.MeshConfig) {
			delete(deployment(m, "contacts-api").labels, istioInject)
		},
		"gRPC provider on the HTTP port": func(_ manifest, mc *meshv1alpha1.MeshConfig) { grpcP(mc).Port = 8080 },
		"gRPC provider on another service": func(_ manifest, mc *meshv1alpha1.MeshConfig) {
			grpcP(mc).Service = "contacts-api.contacts.svc.cluster.local"
		},
		"gRPC provider by short name": func(_ manifest, mc *meshv1alpha1.MeshConfig) { grpcP(mc).Service = "tokenward" },
		"no gRPC listener":            func(m manifest, _ *meshv1alpha1.MeshConfig) { setEnv(m, "TOKENWARD_GRPC_ADDR", "") },
		"gRPC listener moved":         func(m manifest, _ *meshv1alpha1.MeshConfig) { setEnv(m, "TOKENWARD_GRPC_ADDR", ":9000") },
		"gRPC fail open":              func(_ manifest, mc *meshv1alpha1.MeshConfig) { grpcP(mc).FailOpen = true },
		"gRPC default timeout":        func(_ manifest, mc *meshv1alpha1.MeshConfig) { grpcP(mc).Timeout = nil },
		"HTTP provider on the gRPC port": func(_ manifest, mc *meshv1alpha1.MeshConfig) {
			httpP(mc).Port = 9191
		},
		"HTTP fail open": func(_ manifest, mc *meshv1alpha1.MeshConfig) { httpP(mc).FailOpen = true },
		"HTTP without authorization": func(_ manifest, mc *meshv1alpha1.MeshConfig) {
			httpP(mc).IncludeRequestHeadersInCheck = []string{"cookie"}
		},
		"HTTP passes client x-original-*": func(_ manifest, mc *meshv1alpha1.MeshConfig) {
			httpP(mc).IncludeRequestHeadersInCheck = append(httpP(mc).IncludeRequestHeadersInCheck, "x-original-*")
		},
		"HTTP without x-forwarded-uri": func(_ manifest, mc *meshv1alpha1.MeshConfig) {
			delete(httpP(mc).IncludeAdditionalHeadersInCheck, "x-forwarded-uri")
		},
		"HTTP fixed method": func(_ manifest, mc *meshv1alpha1.MeshConfig) {
			httpP(mc).IncludeAdditionalHeadersInCheck["x-forwarded-method"] = "GET"
		},
		"HTTP host from the client's header": func(_ manifest, mc *meshv1alpha1.MeshConfig) {
			httpP(mc).IncludeAdditionalHeadersInCheck["x-forwarded-host"] = "%REQ(X-Forwarded-Host)%"
		},
		"HTTP path prefix": func(_ manifest, mc *meshv1alpha1.MeshConfig) { httpP(mc).PathPrefix = "/ext-authz" },
		"HTTP identity header not copied": func(_ manifest, mc *meshv1alpha1.MeshConfig) {
			httpP(mc).HeadersToUpstreamOnAllow = nil
		},
		"HTTP copies a header tokenward never sets": func(_ manifest, mc *meshv1alpha1.MeshConfig) {
			httpP(mc).HeadersToUpstreamOnAllow = append(httpP(mc).HeadersToUpstreamOnAllow, "x-auth-email")
		},
		"HTTP copies by pattern": func(_ manifest, mc *meshv1alpha1.MeshConfig) {
			httpP(mc).HeadersToUpstreamOnAllow = []string{"x-auth-*"}
		},
		"claim header added to tokenward only": func(m manifest, _ *meshv1alpha1.MeshConfig) {
			setEnv(m, "TOKENWARD_CLAIM_HEADERS", "sub=X-Auth-Subject,email=X-Auth-Email")
		},
		"scopes header added to tokenward only": func(m manifest, _ *meshv1alpha1.MeshConfig) {
			setEnv(m, "TOKENWARD_SCOPES_HEADER", "X-Auth-Scopes")
		},
		"tokenward open to the mesh": func(m manifest, _ *meshv1alpha1.MeshConfig) {
			policy(m, "tokenward-callers").GetRules()[0].From = nil
		},
		"tokenward open by wildcard": func(m manifest, _ *meshv1alpha1.MeshConfig) {
			policy(m, "tokenward-callers").GetRules()[0].GetFrom()[0].GetSource().Principals = []string{"*"}
		},
		"tokenward admin rule opens every port": func(m manifest, _ *meshv1alpha1.MeshConfig) {
			policy(m, "tokenward-callers").GetRules()[1].To = nil
		},
		"API identity not allowed": func(m manifest, _ *meshv1alpha1.MeshConfig) {
			policy(m, "tokenward-callers").GetRules()[0].GetFrom()[0].GetSource().Principals = []string{"cluster.local/ns/contacts/sa/other"}
		},
		"API on the default service account": func(m manifest, _ *meshv1alpha1.MeshConfig) {
			deployment(m, "contacts-api").spec.ServiceAccountName = ""
		},
		"no ALLOW policy for tokenward": func(m manifest, _ *meshv1alpha1.MeshConfig) {
			policy(m, "tokenward-callers").Action = securityv1beta1.AuthorizationPolicy_AUDIT
		},
		"tokenward without sidecar": func(m manifest, _ *meshv1alpha1.MeshConfig) {
			delete(deployment(m, "tokenward").labels, istioInject)
		},
	} {
		t.Run(name, func(t *testing.T) {
			// Fresh copies: the mutations change the decoded objects.
			m, mc := loadIstioManifest(t), loadMeshConfig(t)
			var before failures
			checkIstio(&before, m, mc)
			if len(before) > 0 {
				t.Fatalf("the shipped recipe fails: %v", errors.New(strings.Join(before, "; ")))
			}
			mutate(m, mc)
			var got failures
			checkIstio(&got, m, mc)
			if len(got) == 0 {
				t.Error("not caught")
			}
			t.Log(got)
		})
	}
}

// readmeSnippet returns the fenced block between <!-- name --> and
// <!-- /name --> in ../README.md.
func readmeSnippet(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "<!-- "+name+" -->")
	block, _, ok2 := strings.Cut(rest, "<!-- /"+name+" -->")
	if !ok || !ok2 {
		t.Fatalf("README.md has no <!-- %s --> ... <!-- /%s --> block", name, name)
	}
	block = strings.TrimSpace(block)
	body, ok := strings.CutPrefix(block, "```yaml\n")
	body, ok2 = strings.CutSuffix(body, "```")
	if !ok || !ok2 {
		t.Fatalf("README.md %s: not one ```yaml block", name)
	}
	return body
}

// TestREADMEIstioSnippets keeps the README's Istio configuration equal to the
// files checked above (comments aside).
func TestREADMEIstioSnippets(t *testing.T) {
	mc, err := decodeMeshConfig([]byte(readmeSnippet(t, "istio-meshconfig-snippet")))
	if err != nil {
		t.Fatalf("README mesh config: %v", err)
	}
	if want := loadMeshConfig(t); !proto.Equal(mc, want) {
		t.Errorf("README mesh config differs from %s", meshConfigFile)
	}

	obj, err := decodeDocument(readmeSnippet(t, "istio-policy-snippet"))
	if err != nil {
		t.Fatalf("README policy: %v", err)
	}
	got, ok := obj.(*securityv1.AuthorizationPolicy)
	if !ok {
		t.Fatalf("README policy is a %s", kindOf(obj))
	}
	want, ok := find[*securityv1.AuthorizationPolicy](loadIstioManifest(t), got.Namespace, got.Name)
	if !ok {
		t.Fatalf("README policy %s/%s is not in %s", got.Namespace, got.Name, istioManifest)
	}
	if !proto.Equal(&got.Spec, &want.Spec) || !apiequality.Semantic.DeepEqual(got.ObjectMeta, want.ObjectMeta) {
		t.Errorf("README policy differs from %s's", istioManifest)
	}
}
