package deploy

import (
	"fmt"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The sidecar example comes in two forms: sidecar.yaml, a native sidecar
// (Kubernetes 1.29 and later), and sidecar-legacy.yaml, the plain-container
// form for older clusters.
const (
	nativeSidecarFile = "sidecar.yaml"
	legacySidecarFile = "sidecar-legacy.yaml"
)

func manifestNamed(t *testing.T, ms []manifest, file string) manifest {
	t.Helper()
	i := slices.IndexFunc(ms, func(m manifest) bool { return m.file == file })
	if i < 0 {
		t.Fatalf("%s not found", file)
	}
	return ms[i]
}

// TestNativeSidecar checks that sidecar.yaml's tokenward really is a native
// sidecar, started before the API and gating it: an init container with
// restartPolicy Always (a plain init container would have to exit before the
// API starts), and a startup probe on the admin port, which the kubelet
// waits for before starting the API.
func TestNativeSidecar(t *testing.T) {
	m := manifestNamed(t, loadManifests(t), nativeSidecarFile)
	pods := m.pods()
	if len(pods) == 0 {
		t.Fatalf("%s: no pod template", m.file)
	}
	for _, p := range pods {
		checkNativeSidecar(t, p)
	}
}

func checkNativeSidecar(t reporter, p pod) {
	t.Helper()
	i := slices.IndexFunc(p.spec.InitContainers, func(c corev1.Container) bool { return isTokenward(&c) })
	if i < 0 {
		t.Errorf("%s: tokenward is not in initContainers", p.where)
		return
	}
	c := &p.spec.InitContainers[i]
	if !isNativeSidecar(p.spec, c) {
		t.Errorf("%s: tokenward's init container needs restartPolicy: Always to run beside the API", p.where)
	}
	if slices.ContainsFunc(p.spec.Containers, func(c corev1.Container) bool { return isTokenward(&c) }) {
		t.Errorf("%s: tokenward is also a plain container", p.where)
	}
	if len(p.spec.Containers) == 0 {
		t.Errorf("%s: no API container", p.where)
	}
	tw := newTokenward(p.where, p.spec, c)
	sp := c.StartupProbe
	if sp == nil || sp.HTTPGet == nil {
		t.Errorf("%s: needs a startupProbe (httpGet /healthz on the admin port): without one the API starts as soon as tokenward's process does, before it listens", tw.where)
		return
	}
	port := sp.HTTPGet.Port
	if port.Type == intstr.String {
		if j := slices.IndexFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == port.StrVal }); j >= 0 {
			port = intstr.FromInt32(c.Ports[j].ContainerPort)
		}
	}
	if admin := addrPort(tw.get("TOKENWARD_ADMIN_ADDR")); port.Type != intstr.Int || port.IntVal != admin || sp.HTTPGet.Path != "/healthz" {
		t.Errorf("%s: startupProbe %s port %s, want /healthz on the admin port %d", tw.where, sp.HTTPGet.Path, sp.HTTPGet.Port.String(), admin)
	}
	if c.ReadinessProbe == nil {
		t.Errorf("%s: needs a readinessProbe: a native sidecar's readiness counts towards the pod's", tw.where)
	}
}

// TestSidecarFormsAgree checks that the two sidecar files configure the same
// thing: every object is the same, except that the Deployment runs tokenward
// as a native sidecar in one (restartPolicy Always, a startup probe, no
// preStop sleep of its own) and as a plain container in the other.
func TestSidecarFormsAgree(t *testing.T) {
	ms := loadManifests(t)
	native, legacy := manifestNamed(t, ms, nativeSidecarFile), manifestNamed(t, ms, legacySidecarFile)
	for _, d := range diffSidecarForms(native, legacy) {
		t.Error(d)
	}

	// The comparison sees a difference in what matters.
	for name, mutate := range map[string]func(c *corev1.Container){
		"env":             func(c *corev1.Container) { c.Env[0].Value += "x" },
		"port":            func(c *corev1.Container) { c.Ports[0].ContainerPort++ },
		"securityContext": func(c *corev1.Container) { c.SecurityContext.ReadOnlyRootFilesystem = nil },
		"readinessProbe":  func(c *corev1.Container) { c.ReadinessProbe.PeriodSeconds++ },
	} {
		mutated := manifest{file: native.file}
		for _, o := range native.objects {
			if d, ok := o.obj.(*appsv1.Deployment); ok {
				d = d.DeepCopy()
				mutate(tokenwardIn(&d.Spec.Template.Spec).c)
				o.obj = d
			}
			mutated.objects = append(mutated.objects, o)
		}
		if len(diffSidecarForms(mutated, legacy)) == 0 {
			t.Errorf("a change of tokenward's %s in one file is not seen", name)
		}
	}
}

// diffSidecarForms returns how the two forms differ beyond how the pod runs
// tokenward.
func diffSidecarForms(native, legacy manifest) []string {
	var diffs []string
	if len(native.objects) != len(legacy.objects) {
		return []string{fmt.Sprintf("%s has %d objects, %s %d", native.file, len(native.objects), legacy.file, len(legacy.objects))}
	}
	for i, n := range native.objects {
		l := legacy.objects[i]
		want := n.obj
		if d, ok := n.obj.(*appsv1.Deployment); ok {
			ld, ok := l.obj.(*appsv1.Deployment)
			if !ok {
				diffs = append(diffs, fmt.Sprintf("%s and %s are not both Deployments", n.where, l.where))
				continue
			}
			want = asLegacy(d, ld)
		}
		if !apiequality.Semantic.DeepEqual(want, l.obj) {
			diffs = append(diffs, fmt.Sprintf("%s and %s differ beyond the sidecar form", n.where, l.where))
		}
	}
	return diffs
}

// asLegacy rewrites a native-sidecar Deployment into the plain-container
// form: tokenward moved from initContainers to where legacy has it among the
// containers, without restartPolicy or startup probe, with legacy's preStop.
func asLegacy(native, legacy *appsv1.Deployment) *appsv1.Deployment {
	d := native.DeepCopy()
	spec := &d.Spec.Template.Spec
	i := slices.IndexFunc(spec.InitContainers, func(c corev1.Container) bool { return isTokenward(&c) })
	j := slices.IndexFunc(legacy.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return isTokenward(&c) })
	if i < 0 || j < 0 || j > len(spec.Containers) {
		return d
	}
	c := spec.InitContainers[i]
	spec.InitContainers = slices.Delete(spec.InitContainers, i, i+1)
	if len(spec.InitContainers) == 0 {
		spec.InitContainers = nil
	}
	c.RestartPolicy = nil
	c.StartupProbe = nil
	c.Lifecycle = legacy.Spec.Template.Spec.Containers[j].Lifecycle.DeepCopy()
	spec.Containers = slices.Insert(spec.Containers, j, c)
	return d
}

// TestCheckServicesSeesNativeSidecar: the Service check must know tokenward
// as a native sidecar too. Before, it looked for tokenward among the plain
// containers only, and a Service of sidecar.yaml pointing at tokenward's
// admin port (or at the API, skipping the token check) passed.
func TestCheckServicesSeesNativeSidecar(t *testing.T) {
	m := manifestNamed(t, loadManifests(t), nativeSidecarFile)
	var before failures
	checkServices(&before, m)
	if len(before) > 0 {
		t.Fatalf("the shipped file fails: %v", before)
	}
	for _, o := range m.objects {
		if svc, ok := o.obj.(*corev1.Service); ok {
			svc.Spec.Ports[0].TargetPort = intstr.FromString("admin")
		}
	}
	var got failures
	checkServices(&got, m)
	if len(got) == 0 {
		t.Error("a Service targeting the native sidecar's admin port is not caught")
	}
	t.Log(got)
}
