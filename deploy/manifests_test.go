package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// manifestDir holds the manifests, relative to this package.
const manifestDir = "kubernetes"

// wantManifests are the files deploy/kubernetes/README.md describes.
var wantManifests = []string{"sidecar.yaml", "sidecar-legacy.yaml", "forward-auth.yaml", "istio.yaml", "dpop-redis.yaml"}

// kindKey names a Kubernetes type as a manifest does.
type kindKey struct{ apiVersion, kind string }

// kinds are the types the manifests may contain, each decoded strictly into
// its Go type. A kind missing here fails the checks: add it, and the checks
// it needs, deliberately.
var kinds = map[kindKey]func() metav1.Object{
	{"v1", "ConfigMap"}:                       func() metav1.Object { return new(corev1.ConfigMap) },
	{"v1", "Service"}:                         func() metav1.Object { return new(corev1.Service) },
	{"v1", "ServiceAccount"}:                  func() metav1.Object { return new(corev1.ServiceAccount) },
	{"apps/v1", "Deployment"}:                 func() metav1.Object { return new(appsv1.Deployment) },
	{"policy/v1", "PodDisruptionBudget"}:      func() metav1.Object { return new(policyv1.PodDisruptionBudget) },
	{"networking.k8s.io/v1", "Ingress"}:       func() metav1.Object { return new(networkingv1.Ingress) },
	{"networking.k8s.io/v1", "NetworkPolicy"}: func() metav1.Object { return new(networkingv1.NetworkPolicy) },
	{"security.istio.io/v1", "AuthorizationPolicy"}: func() metav1.Object {
		return new(securityv1.AuthorizationPolicy)
	},
}

// protoSpec returns the spec of an object whose spec is a protobuf message
// (Istio's kinds), or nil. Their generated UnmarshalJSON ignores unknown
// fields, so decodeDocument decodes the spec again, strictly.
func protoSpec(obj metav1.Object) proto.Message {
	switch v := obj.(type) {
	case *securityv1.AuthorizationPolicy:
		return &v.Spec
	}
	return nil
}

// unmarshalProtoStrict decodes JSON into a protobuf message as Istio's
// validating webhook sees it, but refusing unknown fields (protojson's
// default; Istio's own decoder ignores them, so a misspelt field would be
// dropped without a word).
func unmarshalProtoStrict(js []byte, m proto.Message) error {
	return protojson.UnmarshalOptions{DiscardUnknown: false}.Unmarshal(js, m)
}

// manifest is one decoded manifest file. Each file is applied on its own, so
// every reference (a Service's pods, a volume's ConfigMap) must resolve
// within it.
type manifest struct {
	file    string // base name
	objects []object
}

// object is one document of a manifest.
type object struct {
	where string // "sidecar.yaml:42 (Deployment contacts-api)"
	obj   metav1.Object
}

// document is the text of one YAML document and the line it starts on.
type document struct {
	line int
	text string
}

// splitDocuments splits a YAML stream at its "---" lines. Documents holding
// only comments and blank lines are dropped. Content after "---" on the same
// line and the "..." end marker are valid YAML that these checks refuse
// rather than guess at.
func splitDocuments(data string) ([]document, error) {
	var docs []document
	var cur strings.Builder
	start, lineNo := 1, 0
	flush := func() {
		if hasContent(cur.String()) {
			docs = append(docs, document{line: start, text: cur.String()})
		}
		cur.Reset()
	}
	for line := range strings.Lines(data) {
		lineNo++
		trimmed := strings.TrimRight(line, " \t\r\n")
		switch {
		case strings.HasPrefix(trimmed, "---"):
			rest := strings.TrimSpace(trimmed[3:])
			if rest != "" && !strings.HasPrefix(rest, "#") {
				return nil, fmt.Errorf("line %d: content after \"---\" is not supported here; start the document on the next line", lineNo)
			}
			flush()
			start = lineNo + 1
			continue
		case trimmed == "...":
			return nil, fmt.Errorf("line %d: the \"...\" document end marker is not supported here", lineNo)
		}
		cur.WriteString(line)
	}
	flush()
	return docs, nil
}

// hasContent reports whether a document has anything but comments and blank
// lines.
func hasContent(doc string) bool {
	for line := range strings.Lines(doc) {
		l := strings.TrimSpace(line)
		if l != "" && !strings.HasPrefix(l, "#") {
			return true
		}
	}
	return false
}

// decodeDocument decodes one YAML document strictly into the Go type its
// apiVersion and kind name: duplicate keys, unknown fields, fields in the
// wrong case and values of the wrong type are errors, as they are for the API
// server with strict field validation (kubectl's default).
func decodeDocument(doc string) (metav1.Object, error) {
	js, err := yaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	var tm metav1.TypeMeta
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		return nil, fmt.Errorf("not a Kubernetes object: %w", err)
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		return nil, errors.New("apiVersion and kind are required")
	}
	newObject, ok := kinds[kindKey{tm.APIVersion, tm.Kind}]
	if !ok {
		return nil, fmt.Errorf("%s %s is not a kind these checks know; add it to kinds (and its checks) in manifests_test.go", tm.APIVersion, tm.Kind)
	}
	obj := newObject()
	strictErrs, err := sigsjson.UnmarshalStrict(js, obj)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if len(strictErrs) > 0 {
		return nil, fmt.Errorf("%s: %w", tm.Kind, errors.Join(strictErrs...))
	}
	if spec := protoSpec(obj); spec != nil {
		var raw struct {
			Spec json.RawMessage `json:"spec"`
		}
		if err := json.Unmarshal(js, &raw); err != nil {
			return nil, fmt.Errorf("%s: %w", tm.Kind, err)
		}
		if len(raw.Spec) == 0 {
			return nil, fmt.Errorf("%s: no spec", tm.Kind)
		}
		if err := unmarshalProtoStrict(raw.Spec, spec); err != nil {
			return nil, fmt.Errorf("%s: spec: %w", tm.Kind, err)
		}
	}
	return obj, nil
}

// readManifests decodes every YAML file of manifestDir, returning every
// problem found.
func readManifests() ([]manifest, []error) {
	var files []string
	for _, pattern := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(manifestDir, pattern))
		if err != nil {
			return nil, []error{err}
		}
		files = append(files, m...)
	}
	slices.Sort(files)
	var errs []error
	for _, want := range wantManifests {
		if !slices.Contains(files, filepath.Join(manifestDir, want)) {
			errs = append(errs, fmt.Errorf("%s is missing from %s", want, manifestDir))
		}
	}
	var out []manifest
	for _, path := range files {
		m, fileErrs := readManifest(path)
		errs = append(errs, fileErrs...)
		out = append(out, m)
	}
	return out, errs
}

func readManifest(path string) (manifest, []error) {
	base := filepath.Base(path)
	m := manifest{file: base}
	data, err := os.ReadFile(path)
	if err != nil {
		return m, []error{err}
	}
	docs, err := splitDocuments(string(data))
	if err != nil {
		return m, []error{fmt.Errorf("%s: %w", base, err)}
	}
	if len(docs) == 0 {
		return m, []error{fmt.Errorf("%s: no documents", base)}
	}
	var errs []error
	for _, d := range docs {
		obj, err := decodeDocument(d.text)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", base, d.line, err))
			continue
		}
		m.objects = append(m.objects, object{
			where: fmt.Sprintf("%s:%d (%s %s)", base, d.line, kindOf(obj), obj.GetName()),
			obj:   obj,
		})
	}
	return m, errs
}

// loadManifests is readManifests for checks that need every file decoded.
func loadManifests(t *testing.T) []manifest {
	t.Helper()
	ms, errs := readManifests()
	if len(errs) > 0 {
		t.Fatalf("manifests do not decode (see TestManifestsDecodeStrictly):\n%v", errors.Join(errs...))
	}
	return ms
}

// kindOf is the kind of a decoded object: the Go types of k8s.io/api are
// named after their kinds.
func kindOf(obj metav1.Object) string {
	return reflect.TypeOf(obj).Elem().Name()
}

// pod is a pod template and where it is.
type pod struct {
	where     string
	namespace string
	spec      *corev1.PodSpec
	labels    map[string]string
	replicas  int32
}

// pods returns the pod templates of a manifest.
func (m manifest) pods() []pod {
	var out []pod
	for _, o := range m.objects {
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			replicas := int32(1)
			if v.Spec.Replicas != nil {
				replicas = *v.Spec.Replicas
			}
			out = append(out, pod{
				where:     o.where,
				namespace: v.Namespace,
				spec:      &v.Spec.Template.Spec,
				labels:    v.Spec.Template.Labels,
				replicas:  replicas,
			})
		}
	}
	return out
}

// podsSelected returns the pods of namespace ns that selector selects.
func (m manifest) podsSelected(ns string, selector labels.Selector) []pod {
	var out []pod
	for _, p := range m.pods() {
		if p.namespace == ns && selector.Matches(labels.Set(p.labels)) {
			out = append(out, p)
		}
	}
	return out
}

// find returns the object of type T named name in namespace ns.
func find[T metav1.Object](m manifest, ns, name string) (T, bool) {
	for _, o := range m.objects {
		if v, ok := o.obj.(T); ok && v.GetNamespace() == ns && v.GetName() == name {
			return v, true
		}
	}
	var zero T
	return zero, false
}

func allContainers(spec *corev1.PodSpec) []*corev1.Container {
	var out []*corev1.Container
	for i := range spec.InitContainers {
		out = append(out, &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		out = append(out, &spec.Containers[i])
	}
	return out
}

// resolvePort finds the container port that a Service targetPort, a probe
// port or a NetworkPolicy port names: by name, or by number.
func resolvePort(spec *corev1.PodSpec, port intstr.IntOrString) (*corev1.Container, *corev1.ContainerPort) {
	for _, c := range allContainers(spec) {
		for i := range c.Ports {
			p := &c.Ports[i]
			if port.Type == intstr.String && p.Name == port.StrVal ||
				port.Type == intstr.Int && p.ContainerPort == port.IntVal {
				return c, p
			}
		}
	}
	return nil, nil
}

func TestManifestsDecodeStrictly(t *testing.T) {
	ms, errs := readManifests()
	for _, err := range errs {
		t.Error(err)
	}
	n := 0
	for _, m := range ms {
		n += len(m.objects)
	}
	if n == 0 && len(errs) == 0 {
		t.Fatal("no manifests found")
	}
	t.Logf("%d files, %d objects decoded strictly", len(ms), n)
}

// TestDecodeDocumentIsStrict pins what the decoder refuses: each of these
// passes a lenient decoder (and, for most, kubectl without strict
// validation) while meaning something else than was written.
func TestDecodeDocumentIsStrict(t *testing.T) {
	const ok = `apiVersion: v1
kind: ConfigMap
metadata:
  name: x
data:
  a: b
`
	if _, err := decodeDocument(ok); err != nil {
		t.Fatalf("valid document refused: %v", err)
	}
	for name, doc := range map[string]string{
		"unknown field":       strings.Replace(ok, "data:", "dta:", 1),
		"field in wrong case": strings.Replace(ok, "metadata:", "Metadata:", 1),
		"duplicate key":       ok + "data:\n  c: d\n",
		"wrong type":          strings.Replace(ok, "a: b", "a: 1", 1),
		"unknown kind":        strings.Replace(ok, "kind: ConfigMap", "kind: Secret", 1),
		"unknown version":     strings.Replace(ok, "apiVersion: v1", "apiVersion: v2", 1),
		"no kind":             strings.Replace(ok, "kind: ConfigMap\n", "", 1),
		"not a mapping":       "- a\n- b\n",
		"bad yaml":            "a: [b\n",
		"unknown nested field": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: x
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - name: x
          image: x:1
          securityContext:
            readOnlyRootFileSystem: true
`,
	} {
		if _, err := decodeDocument(doc); err == nil {
			t.Errorf("%s: decoded without error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestSplitDocuments(t *testing.T) {
	docs, err := splitDocuments("# only a comment\n---\na: 1\n--- # with a comment\n\n---\nb: |\n  ---\n  indented is content\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0].line != 3 || docs[1].line != 7 {
		t.Fatalf("got %+v, want documents at lines 3 and 7", docs)
	}
	for _, bad := range []string{"a: 1\n--- b: 2\n", "a: 1\n...\n"} {
		if _, err := splitDocuments(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestObjectMetadata checks names, namespaces and labels as the API server
// validates them.
func TestObjectMetadata(t *testing.T) {
	for _, m := range loadManifests(t) {
		seen := map[string]string{}
		for _, o := range m.objects {
			meta := o.obj
			key := kindOf(meta) + "/" + meta.GetNamespace() + "/" + meta.GetName()
			if prev, dup := seen[key]; dup {
				t.Errorf("%s: same kind, namespace and name as %s", o.where, prev)
			}
			seen[key] = o.where
			nameCheck := validation.IsDNS1123Subdomain
			if _, isService := meta.(*corev1.Service); isService {
				nameCheck = validation.IsDNS1035Label
			}
			for _, msg := range nameCheck(meta.GetName()) {
				t.Errorf("%s: name %q: %s", o.where, meta.GetName(), msg)
			}
			if ns := meta.GetNamespace(); ns != "" {
				for _, msg := range validation.IsDNS1123Label(ns) {
					t.Errorf("%s: namespace %q: %s", o.where, ns, msg)
				}
			}
			for _, e := range metav1validation.ValidateLabels(meta.GetLabels(), field.NewPath("metadata", "labels")) {
				t.Errorf("%s: %v", o.where, e)
			}
			for _, e := range apivalidation.ValidateAnnotations(meta.GetAnnotations(), field.NewPath("metadata", "annotations")) {
				t.Errorf("%s: %v", o.where, e)
			}
		}
	}
}

// TestNamespaces checks that a file's objects are either all namespaced
// explicitly or all left to `kubectl apply -n`: a mix puts half an example in
// the wrong namespace, where its references no longer resolve.
func TestNamespaces(t *testing.T) {
	for _, m := range loadManifests(t) {
		nss := map[string]bool{}
		for _, o := range m.objects {
			nss[o.obj.GetNamespace()] = true
		}
		if nss[""] && len(nss) > 1 {
			t.Errorf("%s: some objects have a namespace and some do not", m.file)
		}
	}
}

// TestDeployments checks that each Deployment selects its own pods and that
// its pod spec holds together: unique container names, volumes that exist,
// named probe ports of the probed container.
func TestDeployments(t *testing.T) {
	for _, m := range loadManifests(t) {
		for _, o := range m.objects {
			d, ok := o.obj.(*appsv1.Deployment)
			if !ok {
				continue
			}
			if d.Spec.Selector == nil {
				t.Errorf("%s: spec.selector is required", o.where)
			} else if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err != nil {
				t.Errorf("%s: spec.selector: %v", o.where, err)
			} else if sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("%s: spec.selector does not select the pod template's labels", o.where)
			}
			for _, e := range metav1validation.ValidateLabels(d.Spec.Template.Labels, field.NewPath("spec", "template", "metadata", "labels")) {
				t.Errorf("%s: %v", o.where, e)
			}
			checkPodSpec(t, m, o.where, d.Namespace, &d.Spec.Template.Spec)
		}
	}
}

func checkPodSpec(t *testing.T, m manifest, where, ns string, spec *corev1.PodSpec) {
	t.Helper()
	if len(spec.Containers) == 0 {
		t.Errorf("%s: no containers", where)
	}
	volumes := map[string]*corev1.Volume{}
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		if volumes[v.Name] != nil {
			t.Errorf("%s: volume %q defined twice", where, v.Name)
		}
		volumes[v.Name] = v
		if v.ConfigMap != nil {
			if _, ok := find[*corev1.ConfigMap](m, ns, v.ConfigMap.Name); !ok {
				t.Errorf("%s: volume %q: ConfigMap %q is not in %s", where, v.Name, v.ConfigMap.Name, m.file)
			}
		}
	}
	names := map[string]bool{}
	for _, c := range allContainers(spec) {
		cw := fmt.Sprintf("%s container %q", where, c.Name)
		if names[c.Name] {
			t.Errorf("%s: container name used twice", cw)
		}
		names[c.Name] = true
		for _, msg := range validation.IsDNS1123Label(c.Name) {
			t.Errorf("%s: name: %s", cw, msg)
		}
		checkImage(t, cw, c.Image)
		checkResources(t, cw, c.Resources)
		portNames := map[string]bool{}
		for _, p := range c.Ports {
			if p.Name == "" {
				continue
			}
			for _, msg := range validation.IsValidPortName(p.Name) {
				t.Errorf("%s: port name %q: %s", cw, p.Name, msg)
			}
			portNames[p.Name] = true
		}
		for probeName, probe := range map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe, "startupProbe": c.StartupProbe} {
			if probe == nil || probe.HTTPGet == nil {
				continue
			}
			// Kubelet resolves a named probe port among the probed
			// container's own ports only.
			if p := probe.HTTPGet.Port; p.Type == intstr.String && !portNames[p.StrVal] {
				t.Errorf("%s: %s: port %q is not a port of this container", cw, probeName, p.StrVal)
			}
		}
		env := map[string]bool{}
		for _, e := range c.Env {
			if env[e.Name] {
				t.Errorf("%s: env %s set twice", cw, e.Name)
			}
			env[e.Name] = true
		}
		for _, vm := range c.VolumeMounts {
			if volumes[vm.Name] == nil {
				t.Errorf("%s: volumeMount %q: no such volume", cw, vm.Name)
			}
		}
	}
}

// checkImage requires a pinned image: a tag other than latest, or a digest.
func checkImage(t *testing.T, where, image string) {
	t.Helper()
	if image == "" {
		t.Errorf("%s: no image", where)
		return
	}
	if strings.Contains(image, "@sha256:") {
		return
	}
	last := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(last, ":")
	if !ok || tag == "" || tag == "latest" {
		t.Errorf("%s: image %q: pin a version tag or a digest", where, image)
	}
}

// checkResources requires CPU and memory requests and limits, requests no
// larger than limits.
func checkResources(t *testing.T, where string, r corev1.ResourceRequirements) {
	t.Helper()
	// The API server refuses other unqualified names; a typo would otherwise
	// only show up as a missing request.
	for _, list := range []corev1.ResourceList{r.Requests, r.Limits} {
		for name := range list {
			switch {
			case name == corev1.ResourceCPU, name == corev1.ResourceMemory, name == corev1.ResourceEphemeralStorage,
				strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix), strings.Contains(string(name), "/"):
			default:
				t.Errorf("%s: %q is not a resource name", where, name)
			}
		}
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := r.Requests[name]
		lim, hasLim := r.Limits[name]
		switch {
		case !hasReq:
			t.Errorf("%s: no %s request", where, name)
		case !hasLim:
			t.Errorf("%s: no %s limit", where, name)
		case req.Sign() <= 0:
			t.Errorf("%s: %s request %s is not positive", where, name, req.String())
		case req.Cmp(lim) > 0:
			t.Errorf("%s: %s request %s exceeds its limit %s", where, name, req.String(), lim.String())
		}
	}
}

// TestServices checks that every Service selects pods of its file and that
// each target port exists in them; where the pods run tokenward, the Service
// must reach tokenward's listener, never the admin port or the API behind it.
func TestServices(t *testing.T) {
	for _, m := range loadManifests(t) {
		checkServices(t, m)
	}
}

func checkServices(t reporter, m manifest) {
	t.Helper()
	for _, o := range m.objects {
		svc, ok := o.obj.(*corev1.Service)
		if !ok {
			continue
		}
		if len(svc.Spec.Selector) == 0 {
			t.Errorf("%s: no selector", o.where)
			continue
		}
		pods := m.podsSelected(svc.Namespace, labels.SelectorFromSet(svc.Spec.Selector))
		if len(pods) == 0 {
			t.Errorf("%s: selects no pod template in %s", o.where, m.file)
		}
		for _, sp := range svc.Spec.Ports {
			pw := fmt.Sprintf("%s port %q", o.where, sp.Name)
			target := sp.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(sp.Port)
			}
			for _, p := range pods {
				c, cp := resolvePort(p.spec, target)
				if cp == nil {
					t.Errorf("%s: targetPort %s is no container port of %s", pw, target.String(), p.where)
					continue
				}
				tw := tokenwardIn(p.spec)
				if tw == nil {
					continue
				}
				listen := addrPort(tw.get("TOKENWARD_LISTEN_ADDR"))
				var grpc int32 = -1
				if addr, ok := tw.env["TOKENWARD_GRPC_ADDR"]; ok {
					grpc = addrPort(addr)
				}
				if c != tw.c || cp.ContainerPort != listen && cp.ContainerPort != grpc {
					t.Errorf("%s: targets container %q port %d; a Service of a pod running tokenward must target tokenward's listener (%d, or its gRPC listener), or requests skip the token check",
						pw, c.Name, cp.ContainerPort, listen)
				}
			}
		}
	}
}

// TestIngresses checks that each backend is a Service port of the file, and
// the forward-auth wiring of ingress-nginx Ingresses.
func TestIngresses(t *testing.T) {
	for _, m := range loadManifests(t) {
		for _, o := range m.objects {
			ing, ok := o.obj.(*networkingv1.Ingress)
			if !ok {
				continue
			}
			var backends []*networkingv1.IngressBackend
			if ing.Spec.DefaultBackend != nil {
				backends = append(backends, ing.Spec.DefaultBackend)
			}
			for _, r := range ing.Spec.Rules {
				if r.HTTP == nil {
					continue
				}
				for i := range r.HTTP.Paths {
					backends = append(backends, &r.HTTP.Paths[i].Backend)
				}
			}
			if len(backends) == 0 {
				t.Errorf("%s: no backends", o.where)
			}
			for _, b := range backends {
				if b.Service == nil {
					t.Errorf("%s: backend is not a Service", o.where)
					continue
				}
				svc, ok := find[*corev1.Service](m, ing.Namespace, b.Service.Name)
				if !ok {
					t.Errorf("%s: backend Service %q is not in %s", o.where, b.Service.Name, m.file)
					continue
				}
				if servicePort(svc, b.Service.Port) == nil {
					t.Errorf("%s: backend Service %q has no port %+v", o.where, svc.Name, b.Service.Port)
				}
			}
			if _, ok := ing.Annotations[nginxAnnotation+"auth-url"]; ok {
				checkNginxForwardAuth(t, m, o.where, ing)
			}
		}
	}
}

func servicePort(svc *corev1.Service, p networkingv1.ServiceBackendPort) *corev1.ServicePort {
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		if p.Name != "" && sp.Name == p.Name || p.Name == "" && sp.Port == p.Number {
			return sp
		}
	}
	return nil
}

// TestPodDisruptionBudgets checks that each budget covers pods of its file
// and still lets a node drain evict one of them.
func TestPodDisruptionBudgets(t *testing.T) {
	for _, m := range loadManifests(t) {
		for _, o := range m.objects {
			pdb, ok := o.obj.(*policyv1.PodDisruptionBudget)
			if !ok {
				continue
			}
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err != nil || sel.Empty() {
				t.Errorf("%s: needs a non-empty selector (%v)", o.where, err)
				continue
			}
			pods := m.podsSelected(pdb.Namespace, sel)
			if len(pods) == 0 {
				t.Errorf("%s: selects no pod template in %s", o.where, m.file)
			}
			if (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
				t.Errorf("%s: set exactly one of minAvailable and maxUnavailable", o.where)
			}
			for _, p := range pods {
				if p.replicas < 2 {
					t.Errorf("%s: %s has %d replica(s): the budget would block every drain, or allow a full outage", o.where, p.where, p.replicas)
				}
				if v := pdb.Spec.MaxUnavailable; v != nil && v.Type == intstr.Int && v.IntVal < 1 {
					t.Errorf("%s: maxUnavailable %d blocks every voluntary eviction", o.where, v.IntVal)
				}
				if v := pdb.Spec.MinAvailable; v != nil && v.Type == intstr.Int && v.IntVal >= p.replicas {
					t.Errorf("%s: minAvailable %d with %d replicas blocks every voluntary eviction", o.where, v.IntVal, p.replicas)
				}
			}
		}
	}
}

// TestNetworkPolicies checks that each policy selects pods of its file and
// that the ports it names exist in them.
func TestNetworkPolicies(t *testing.T) {
	for _, m := range loadManifests(t) {
		for _, o := range m.objects {
			np, ok := o.obj.(*networkingv1.NetworkPolicy)
			if !ok {
				continue
			}
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			if err != nil || sel.Empty() {
				t.Errorf("%s: needs a non-empty podSelector (%v)", o.where, err)
				continue
			}
			pods := m.podsSelected(np.Namespace, sel)
			if len(pods) == 0 {
				t.Errorf("%s: selects no pod template in %s", o.where, m.file)
			}
			for _, rule := range np.Spec.Ingress {
				for _, port := range rule.Ports {
					if port.Port == nil {
						continue
					}
					for _, p := range pods {
						if _, cp := resolvePort(p.spec, *port.Port); cp == nil {
							t.Errorf("%s: port %s is no container port of %s", o.where, port.Port.String(), p.where)
						}
					}
				}
			}
		}
	}
}
