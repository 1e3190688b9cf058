package deploy

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// nginxAnnotation prefixes ingress-nginx's annotations.
const nginxAnnotation = "nginx.ingress.kubernetes.io/"

// checkNginxForwardAuth checks an ingress-nginx Ingress that uses tokenward
// as its auth-url.
//
// ingress-nginx's auth subrequest passes every header of the client's request
// and adds X-Original-Method always, X-Original-URI only with auth-method.
// tokenward reads X-Forwarded-Method/-Uri/-Host before X-Original-*, so
// nginx must overwrite those three (auth-proxy-set-headers), or a client
// names a public route in them and reaches any other.
func checkNginxForwardAuth(t reporter, m manifest, where string, ing *networkingv1.Ingress) {
	t.Helper()
	a := ing.Annotations
	authURL := a[nginxAnnotation+"auth-url"]
	u, err := url.Parse(authURL)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" {
		t.Errorf("%s: auth-url %q is not an http(s) URL", where, authURL)
		return
	}
	svcName, ns := serviceHost(u.Hostname(), ing.Namespace)
	svc, ok := find[*corev1.Service](m, ns, svcName)
	if !ok {
		t.Errorf("%s: auth-url host %q is no Service of %s", where, u.Hostname(), m.file)
		return
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return strconv.Itoa(int(p.Port)) == port })
	if i < 0 {
		t.Errorf("%s: auth-url port %s is not a port of Service %q", where, port, svc.Name)
		return
	}
	var tw *tokenward
	for _, p := range m.podsSelected(svc.Namespace, labels.SelectorFromSet(svc.Spec.Selector)) {
		if tw = tokenwardIn(p.spec); tw == nil || tw.get("TOKENWARD_MODE") != "forward-auth" {
			t.Errorf("%s: auth-url Service %q selects %s, which does not run tokenward in forward-auth mode", where, svc.Name, p.where)
			return
		}
	}
	if tw == nil {
		t.Errorf("%s: auth-url Service %q selects no pods", where, svc.Name)
		return
	}
	// TestServices checks that the Service port reaches tokenward's listener.

	if method := a[nginxAnnotation+"auth-method"]; method == "" {
		t.Errorf("%s: set auth-method, or ingress-nginx sends no X-Original-URI and tokenward judges every request's path as \"/\", whatever the route rules say", where)
	}

	ref := a[nginxAnnotation+"auth-proxy-set-headers"]
	cmNS, cmName, ok := strings.Cut(ref, "/")
	if !ok || cmNS != ing.Namespace {
		t.Errorf("%s: auth-proxy-set-headers %q must be %s/<ConfigMap> (the Ingress's namespace), overwriting client-sent X-Forwarded-Method/-Uri/-Host", where, ref, ing.Namespace)
	} else if cm, ok := find[*corev1.ConfigMap](m, cmNS, cmName); !ok {
		t.Errorf("%s: auth-proxy-set-headers: ConfigMap %s is not in %s", where, ref, m.file)
	} else {
		headers := map[string]string{}
		for k, v := range cm.Data {
			headers[http.CanonicalHeaderKey(k)] = v
		}
		for header, values := range map[string][]string{
			"X-Forwarded-Method": {"$request_method"},
			"X-Forwarded-Uri":    {"$request_uri"},
			"X-Forwarded-Host":   {"$host", "$http_host", "$best_http_host"},
		} {
			if !slices.Contains(values, headers[header]) {
				t.Errorf("%s: ConfigMap %s must set %s to %s, replacing the client's", where, ref, header, strings.Join(values, " or "))
			}
		}
	}

	var listed []string
	for h := range strings.SplitSeq(a[nginxAnnotation+"auth-response-headers"], ",") {
		if h = strings.TrimSpace(h); h != "" {
			listed = append(listed, http.CanonicalHeaderKey(h))
		}
	}
	claims := claimHeaders(tw.get("TOKENWARD_CLAIM_HEADERS"))
	for _, h := range claims {
		if !slices.Contains(listed, h) {
			t.Errorf("%s: auth-response-headers lacks %s: the API would get the client's copy, or none", where, h)
		}
	}
	for _, h := range listed {
		if !slices.Contains(claims, h) {
			t.Errorf("%s: auth-response-headers lists %s, which tokenward does not send", where, h)
		}
	}

	for _, risky := range []string{"auth-cache-key", "auth-snippet"} {
		if _, ok := a[nginxAnnotation+risky]; ok {
			t.Errorf("%s: %s: a cached answer outlives the token and its route; a snippet can undo the header overwrites", where, risky)
		}
	}
}

// serviceHost splits a Service's DNS name: name, name.ns, name.ns.svc or
// name.ns.svc.cluster.local.
func serviceHost(host, defaultNS string) (name, ns string) {
	host = strings.TrimSuffix(host, ".cluster.local")
	host = strings.TrimSuffix(host, ".svc")
	name, ns, ok := strings.Cut(host, ".")
	if !ok {
		ns = defaultNS
	}
	return name, ns
}

// TestCheckNginxForwardAuthCatches pins the forward-auth wiring checks: each
// mutation of the shipped example must be caught.
func TestCheckNginxForwardAuthCatches(t *testing.T) {
	ms := loadManifests(t)
	i := slices.IndexFunc(ms, func(m manifest) bool { return m.file == "forward-auth.yaml" })
	if i < 0 {
		t.Fatal("forward-auth.yaml not found")
	}
	base := ms[i]
	var ing *networkingv1.Ingress
	for _, o := range base.objects {
		if v, ok := o.obj.(*networkingv1.Ingress); ok {
			ing = v
		}
	}
	if ing == nil {
		t.Fatal("forward-auth.yaml has no Ingress")
	}
	for name, mutate := range map[string]func(a map[string]string){
		"no auth-method":            func(a map[string]string) { delete(a, nginxAnnotation+"auth-method") },
		"no auth-proxy-set-headers": func(a map[string]string) { delete(a, nginxAnnotation+"auth-proxy-set-headers") },
		"no response headers":       func(a map[string]string) { delete(a, nginxAnnotation+"auth-response-headers") },
		"extra response header":     func(a map[string]string) { a[nginxAnnotation+"auth-response-headers"] += ",X-Auth-Email" },
		"wrong service": func(a map[string]string) {
			a[nginxAnnotation+"auth-url"] = "http://contacts-api.contacts.svc.cluster.local:80/"
		},
		"wrong port": func(a map[string]string) {
			a[nginxAnnotation+"auth-url"] = "http://tokenward.contacts.svc.cluster.local:9090/"
		},
		"cache": func(a map[string]string) { a[nginxAnnotation+"auth-cache-key"] = "$http_authorization" },
	} {
		t.Run(name, func(t *testing.T) {
			mutated := ing.DeepCopy()
			mutate(mutated.Annotations)
			var got failures
			checkNginxForwardAuth(&got, base, "test", mutated)
			if len(got) == 0 {
				t.Error("not caught")
			}
			t.Log(got)
		})
	}
}

// reporter is the part of testing.T that checks use, so that a test can
// feed a check a broken manifest and see it fail.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// failures records a check's failures instead of failing the test.
type failures []string

func (f *failures) Helper() {}

func (f *failures) Errorf(format string, args ...any) {
	*f = append(*f, fmt.Sprintf(format, args...))
}
