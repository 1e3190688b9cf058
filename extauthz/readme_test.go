package extauthz_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3" // resolves the router's typed_config
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3" // resolves the cluster's protocol options
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/tokenward/tokenward/extauthz"
	"github.com/tokenward/tokenward/proxy"
)

// snippet returns the YAML between <!-- name --> and <!-- /name --> in the
// README, decoded.
func snippet(t *testing.T, name string) map[string]any {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "<!-- "+name+" -->\n")
	block, _, ok2 := strings.Cut(rest, "<!-- /"+name+" -->")
	if !ok || !ok2 {
		t.Fatalf("README has no %s block", name)
	}
	block = strings.TrimPrefix(strings.TrimSpace(block), "```yaml")
	block = strings.TrimSuffix(block, "```")
	var out map[string]any
	if err := yaml.Unmarshal([]byte(block), &out); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

// decode reads v (decoded YAML) strictly into m as Envoy reads its
// configuration (proto JSON, no unknown fields) and validates it with
// Envoy's own rules (protoc-gen-validate).
func decode(t *testing.T, v any, m proto.Message) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(b, m); err != nil {
		t.Fatalf("%T: %v", m, err)
	}
	if val, ok := m.(interface{ ValidateAll() error }); ok {
		if err := val.ValidateAll(); err != nil {
			t.Fatalf("%T: %v", m, err)
		}
	}
}

// TestREADMEEnvoyRecipe: Envoy cannot be installed here, so the README's
// Envoy recipes are decoded into Envoy's API types and validated, and held
// to what tokenward needs: gRPC ext_authz on V3 to the cluster serving
// tokenward's health, no request body, failures denied; the HTTP service
// with a path_prefix tokenward accepts, and no path or method override.
func TestREADMEEnvoyRecipe(t *testing.T) {
	grpcRecipe := snippet(t, "envoy-grpc-snippet")
	var authz *extauthzv3.ExtAuthz
	filters, _ := grpcRecipe["http_filters"].([]any)
	for _, f := range filters {
		var hf hcmv3.HttpFilter
		decode(t, f, &hf)
		if hf.GetName() != "envoy.filters.http.ext_authz" {
			continue
		}
		authz = &extauthzv3.ExtAuthz{}
		if err := hf.GetTypedConfig().UnmarshalTo(authz); err != nil {
			t.Fatal(err)
		}
	}
	if authz == nil {
		t.Fatal("no ext_authz filter")
	}
	clusters, _ := grpcRecipe["clusters"].([]any)
	if len(clusters) != 1 {
		t.Fatalf("%d clusters, want 1", len(clusters))
	}
	var c clusterv3.Cluster
	decode(t, clusters[0], &c)

	if authz.GetTransportApiVersion().String() != "V3" {
		t.Errorf("transport_api_version %v", authz.GetTransportApiVersion())
	}
	if got := authz.GetGrpcService().GetEnvoyGrpc().GetClusterName(); got != c.GetName() {
		t.Errorf("grpc_service names cluster %q, the cluster is %q", got, c.GetName())
	}
	if authz.GetWithRequestBody() != nil || authz.GetFailureModeAllow() || !authz.GetEncodeRawHeaders() {
		t.Errorf("with_request_body %v, failure_mode_allow %v, encode_raw_headers %v; want none, false, true",
			authz.GetWithRequestBody(), authz.GetFailureModeAllow(), authz.GetEncodeRawHeaders())
	}
	hc := c.GetHealthChecks()
	if len(hc) != 1 || hc[0].GetGrpcHealthCheck().GetServiceName() != extauthz.ServiceName {
		t.Errorf("health checks %v, want one gRPC check of %s", hc, extauthz.ServiceName)
	}

	httpRecipe := snippet(t, "envoy-request-line-snippet")
	filters, _ = httpRecipe["http_filters"].([]any)
	if len(filters) != 1 {
		t.Fatalf("%d filters in the request-line recipe, want 1", len(filters))
	}
	var hf hcmv3.HttpFilter
	decode(t, filters[0], &hf)
	var hauthz extauthzv3.ExtAuthz
	if err := hf.GetTypedConfig().UnmarshalTo(&hauthz); err != nil {
		t.Fatal(err)
	}
	hs := hauthz.GetHttpService()
	if err := proxy.CheckPathPrefix(hs.GetPathPrefix()); err != nil || hs.GetPathPrefix() == "" {
		t.Errorf("path_prefix %q: %v", hs.GetPathPrefix(), err)
	}
	if hs.GetPathOverride() != "" || len(hs.GetAuthorizationRequest().GetHeadersToAdd()) != 0 {
		t.Errorf("the request-line recipe overrides the path or adds headers: %v", hs)
	}
}
