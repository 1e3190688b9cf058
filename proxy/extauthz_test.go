package proxy_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tokenward/tokenward/extauthz"
	"github.com/tokenward/tokenward/proxy"
)

// startExtAuthz serves fa's decision over gRPC on loopback, as Envoy's
// ext_authz calls it, and returns a client of the generated API.
func startExtAuthz(tb testing.TB, fa *proxy.ForwardAuth) authv3.AuthorizationClient {
	tb.Helper()
	srv, err := extauthz.New(fa, extauthz.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		conn.Close()
		srv.Stop()
		<-done
	})
	return authv3.NewAuthorizationClient(conn)
}

// checkGRPC asks over gRPC about a request as Envoy describes it (pseudo
// headers and lower-case names in header_map, repeated headers apart) and
// turns the answer into the HTTP response Envoy would send the client, or
// for an allow into a 200 whose headers are those Envoy would set on the
// request.
func checkGRPC(tb testing.TB, c authv3.AuthorizationClient, method, path string, h http.Header) (*http.Response, string) {
	tb.Helper()
	hm := &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":method", Value: method}, {Key: ":path", Value: path}, {Key: ":authority", Value: "api.example.com"},
	}}
	for k, vs := range h {
		for _, v := range vs {
			hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: strings.ToLower(k), RawValue: []byte(v)})
		}
	}
	resp, err := c.Check(waitCtx(tb), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Host: "api.example.com", HeaderMap: hm,
		}},
	}})
	if err != nil {
		tb.Fatalf("Check: %v", err)
	}
	return envoyAnswer(tb, resp)
}

// envoyAnswer is what Envoy makes of a CheckResponse.
func envoyAnswer(tb testing.TB, resp *authv3.CheckResponse) (*http.Response, string) {
	tb.Helper()
	out := &http.Response{Header: http.Header{}}
	var options []*corev3.HeaderValueOption
	body := ""
	if ok := resp.GetOkResponse(); ok != nil {
		if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			tb.Fatalf("an OkHttpResponse with gRPC status %d", resp.GetStatus().GetCode())
		}
		out.StatusCode = http.StatusOK
		options = ok.GetHeaders()
	} else {
		d := resp.GetDeniedResponse()
		if d == nil || codes.Code(resp.GetStatus().GetCode()) == codes.OK {
			tb.Fatalf("neither an allow nor a deny: %v", resp)
		}
		out.StatusCode = int(d.GetStatus().GetCode())
		options = d.GetHeaders()
		body = d.GetBody()
	}
	out.Status = strconv.Itoa(out.StatusCode) + " " + http.StatusText(out.StatusCode)
	for _, o := range options {
		if o.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			tb.Errorf("header %s is appended, not set", o.GetHeader().GetKey())
		}
		out.Header.Add(o.GetHeader().GetKey(), o.GetHeader().GetValue())
	}
	out.Body = io.NopCloser(bytes.NewReader([]byte(body)))
	return out, body
}
