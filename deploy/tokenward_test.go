package deploy

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// defaults are the documented defaults of the variables these checks read.
var defaults = map[string]string{
	"TOKENWARD_MODE":           "proxy",
	"TOKENWARD_LISTEN_ADDR":    ":8080",
	"TOKENWARD_ADMIN_ADDR":     ":9090",
	"TOKENWARD_CLAIM_HEADERS":  "sub=X-Auth-Subject",
	"TOKENWARD_SHUTDOWN_GRACE": "25s",
}

// nonrootUID is the user of the image (distroless "nonroot").
const nonrootUID = 65532

// tokenward is one tokenward container of a pod template.
type tokenward struct {
	where string
	pod   *corev1.PodSpec
	c     *corev1.Container
	env   map[string]string // TOKENWARD_* variables with a literal value
	refs  map[string]bool   // TOKENWARD_* variables set through valueFrom
}

// get returns a variable's literal value, or its documented default.
func (tw *tokenward) get(name string) string {
	if v, ok := tw.env[name]; ok {
		return v
	}
	return defaults[name]
}

// isTokenward reports whether a container runs tokenward: it is named so, or
// runs an image named so.
func isTokenward(c *corev1.Container) bool {
	return c.Name == "tokenward" || imageName(c.Image) == "tokenward"
}

// imageName is the last path element of an image reference, without tag or
// digest.
func imageName(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	name := ref[strings.LastIndex(ref, "/")+1:]
	name, _, _ = strings.Cut(name, ":")
	return name
}

func newTokenward(where string, spec *corev1.PodSpec, c *corev1.Container) *tokenward {
	tw := &tokenward{
		where: fmt.Sprintf("%s container %q", where, c.Name),
		pod:   spec,
		c:     c,
		env:   map[string]string{},
		refs:  map[string]bool{},
	}
	for _, e := range c.Env {
		if !strings.HasPrefix(e.Name, "TOKENWARD_") {
			continue
		}
		if e.ValueFrom != nil {
			tw.refs[e.Name] = true
		} else {
			tw.env[e.Name] = e.Value
		}
	}
	return tw
}

// tokenwardIn returns the tokenward container of a pod spec, a native
// sidecar or a plain container, or nil.
func tokenwardIn(spec *corev1.PodSpec) *tokenward {
	for _, c := range allContainers(spec) {
		if isTokenward(c) {
			return newTokenward("", spec, c)
		}
	}
	return nil
}

// isNativeSidecar reports whether c is a Kubernetes native sidecar (1.29
// and later): an init container with restartPolicy Always, started before
// the main containers and running beside them.
func isNativeSidecar(spec *corev1.PodSpec, c *corev1.Container) bool {
	return slices.ContainsFunc(spec.InitContainers, func(ic corev1.Container) bool { return ic.Name == c.Name }) &&
		c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// tokenwards returns every tokenward container of a manifest.
func (m manifest) tokenwards() []*tokenward {
	var out []*tokenward
	for _, p := range m.pods() {
		for _, c := range allContainers(p.spec) {
			if isTokenward(c) {
				out = append(out, newTokenward(p.where, p.spec, c))
			}
		}
	}
	return out
}

// portOf returns the port of a host:port address, or 0.
func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("address %q: %v", addr, err)
		return 0
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		t.Errorf("address %q: no port number", addr)
		return 0
	}
	return int32(n)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// TestTokenwardPresent keeps the other checks from passing vacuously.
func TestTokenwardPresent(t *testing.T) {
	for _, m := range loadManifests(t) {
		if len(m.tokenwards()) == 0 {
			t.Errorf("%s: no tokenward container (named tokenward, or running an image named tokenward)", m.file)
		}
		for _, p := range m.pods() {
			n := 0
			for _, c := range allContainers(p.spec) {
				if isTokenward(c) {
					n++
					// A plain init container would have to exit before the
					// API starts.
					if slices.ContainsFunc(p.spec.InitContainers, func(ic corev1.Container) bool { return ic.Name == c.Name }) && !isNativeSidecar(p.spec, c) {
						t.Errorf("%s: tokenward is an init container without restartPolicy Always, not a native sidecar", p.where)
					}
				}
			}
			if n > 1 {
				t.Errorf("%s: %d tokenward containers in one pod", p.where, n)
			}
		}
	}
}

// TestTokenwardSecurityContext checks the container-level hardening, and
// that the pod or the container makes it run as the image's non-root user
// under the runtime's default seccomp profile.
func TestTokenwardSecurityContext(t *testing.T) {
	for _, m := range loadManifests(t) {
		for _, tw := range m.tokenwards() {
			sc := tw.c.SecurityContext
			if sc == nil {
				t.Errorf("%s: no securityContext", tw.where)
				continue
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: readOnlyRootFilesystem must be true", tw.where)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation must be false", tw.where)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s: privileged", tw.where)
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				t.Errorf("%s: capabilities must drop ALL", tw.where)
			} else if len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s: capabilities added: %v", tw.where, sc.Capabilities.Add)
			}
			psc := tw.pod.SecurityContext
			if psc == nil {
				psc = &corev1.PodSecurityContext{}
			}
			// The container's settings take precedence over the pod's.
			runAsNonRoot := cmpOr(sc.RunAsNonRoot, psc.RunAsNonRoot)
			if runAsNonRoot == nil || !*runAsNonRoot {
				t.Errorf("%s: runAsNonRoot must be true (container or pod)", tw.where)
			}
			runAsUser := cmpOr(sc.RunAsUser, psc.RunAsUser)
			if runAsUser == nil || *runAsUser != nonrootUID {
				t.Errorf("%s: runAsUser must be %d, the image's nonroot user (container or pod)", tw.where, nonrootUID)
			}
			seccomp := cmpOr(sc.SeccompProfile, psc.SeccompProfile)
			if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault && seccomp.Type != corev1.SeccompProfileTypeLocalhost {
				t.Errorf("%s: seccompProfile must be RuntimeDefault (or Localhost) (container or pod)", tw.where)
			}
		}
	}
}

// cmpOr returns the first non-nil pointer.
func cmpOr[T any](ps ...*T) *T {
	for _, p := range ps {
		if p != nil {
			return p
		}
	}
	return nil
}

// TestTokenwardPorts checks that the container declares its listener and
// admin ports, both reachable on the pod IP (kubelet probes, Services and
// Prometheus connect there, never to loopback).
func TestTokenwardPorts(t *testing.T) {
	for _, m := range loadManifests(t) {
		for _, tw := range m.tokenwards() {
			for _, name := range []string{"TOKENWARD_LISTEN_ADDR", "TOKENWARD_ADMIN_ADDR"} {
				addr := tw.get(name)
				host, _, err := net.SplitHostPort(addr)
				if err != nil {
					t.Errorf("%s: %s %q: %v", tw.where, name, addr, err)
					continue
				}
				if isLoopback(host) {
					t.Errorf("%s: %s %q is loopback: unreachable from the pod IP", tw.where, name, addr)
				}
				port := portOf(t, addr)
				if !slices.ContainsFunc(tw.c.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == port }) {
					t.Errorf("%s: %s port %d is not a containerPort", tw.where, name, port)
				}
			}
			if tw.get("TOKENWARD_LISTEN_ADDR") == tw.get("TOKENWARD_ADMIN_ADDR") {
				t.Errorf("%s: the listener and the admin endpoints share an address", tw.where)
			}
			if grpc, ok := tw.env["TOKENWARD_GRPC_ADDR"]; ok {
				port := portOf(t, grpc)
				if !slices.ContainsFunc(tw.c.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == port }) {
					t.Errorf("%s: TOKENWARD_GRPC_ADDR port %d is not a containerPort", tw.where, port)
				}
				for _, other := range []string{"TOKENWARD_LISTEN_ADDR", "TOKENWARD_ADMIN_ADDR"} {
					if portOf(t, tw.get(other)) == port {
						t.Errorf("%s: TOKENWARD_GRPC_ADDR and %s share port %d", tw.where, other, port)
					}
				}
			}
		}
	}
}

// TestTokenwardProbes checks readiness on /readyz and liveness on /healthz,
// both on the admin port.
func TestTokenwardProbes(t *testing.T) {
	for _, m := range loadManifests(t) {
		for _, tw := range m.tokenwards() {
			admin := portOf(t, tw.get("TOKENWARD_ADMIN_ADDR"))
			for _, want := range []struct {
				name  string
				probe *corev1.Probe
				path  string
			}{
				{"readinessProbe", tw.c.ReadinessProbe, "/readyz"},
				{"livenessProbe", tw.c.LivenessProbe, "/healthz"},
			} {
				if want.probe == nil || want.probe.HTTPGet == nil {
					t.Errorf("%s: %s must be an httpGet of %s", tw.where, want.name, want.path)
					continue
				}
				g := want.probe.HTTPGet
				if g.Path != want.path {
					t.Errorf("%s: %s path %q, want %q", tw.where, want.name, g.Path, want.path)
				}
				if g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP {
					t.Errorf("%s: %s scheme %s; the admin server speaks plain HTTP", tw.where, want.name, g.Scheme)
				}
				port := g.Port
				if port.Type == intstr.String {
					if i := slices.IndexFunc(tw.c.Ports, func(p corev1.ContainerPort) bool { return p.Name == port.StrVal }); i >= 0 {
						port = intstr.FromInt32(tw.c.Ports[i].ContainerPort)
					}
				}
				if port.Type != intstr.Int || port.IntVal != admin {
					t.Errorf("%s: %s on port %s, want the admin port %d", tw.where, want.name, g.Port.String(), admin)
				}
			}
			if tw.c.StartupProbe != nil && tw.c.StartupProbe.HTTPGet != nil && tw.c.StartupProbe.HTTPGet.Path == "/readyz" {
				// A startup probe on /readyz kills the container while the
				// issuer is unreachable, which readiness alone survives.
				t.Errorf("%s: startupProbe on /readyz restarts tokenward during an issuer outage", tw.where)
			}
		}
	}
}

// TestTokenwardTermination checks that the pod's grace period outlasts the
// preStop sleep plus tokenward's drain, so in-flight requests finish before
// SIGKILL.
func TestTokenwardTermination(t *testing.T) {
	for _, m := range loadManifests(t) {
		for _, tw := range m.tokenwards() {
			grace := 30 * time.Second // Kubernetes' default
			if s := tw.pod.TerminationGracePeriodSeconds; s != nil {
				grace = time.Duration(*s) * time.Second
			}
			drain, err := time.ParseDuration(tw.get("TOKENWARD_SHUTDOWN_GRACE"))
			if err != nil {
				t.Errorf("%s: TOKENWARD_SHUTDOWN_GRACE: %v", tw.where, err)
				continue
			}
			var preStop time.Duration
			if l := tw.c.Lifecycle; l != nil && l.PreStop != nil {
				switch h := l.PreStop; {
				case h.Sleep != nil:
					preStop = time.Duration(h.Sleep.Seconds) * time.Second
				default:
					// The image has no shell and no other binary.
					t.Errorf("%s: preStop must be a sleep action; the image has nothing to exec and tokenward no hook to call", tw.where)
				}
			}
			if grace <= preStop+drain {
				t.Errorf("%s: terminationGracePeriodSeconds %v must exceed the preStop sleep %v plus TOKENWARD_SHUTDOWN_GRACE %v",
					tw.where, grace, preStop, drain)
			}
		}
	}
}
