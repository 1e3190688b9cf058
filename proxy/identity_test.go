package proxy_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/proxy"
)

func TestParseClaimHeaders(t *testing.T) {
	tests := []struct {
		in      string
		want    []proxy.ClaimHeader
		wantErr []string
	}{
		{in: "", want: nil},
		{in: "sub=X-Auth-Subject", want: []proxy.ClaimHeader{{"sub", "X-Auth-Subject"}}},
		{in: " sub = x-auth-subject , ,", want: []proxy.ClaimHeader{{"sub", "X-Auth-Subject"}}},
		{
			// The last "=" splits: claim names may be URLs with "=" in them.
			in: "sub=X-Auth-Subject,https://example.com/roles=X-Auth-Roles,https://example.com/?a=b=X-Odd",
			want: []proxy.ClaimHeader{
				{"sub", "X-Auth-Subject"},
				{"https://example.com/roles", "X-Auth-Roles"},
				{"https://example.com/?a=b", "X-Odd"},
			},
		},
		{in: "org.id=X-Org", want: []proxy.ClaimHeader{{"org.id", "X-Org"}}},
		{in: "sub=X-A,email=X-A", wantErr: []string{`header "X-A" given twice`}},
		{in: "sub=X-A,email=x-a", wantErr: []string{`given twice`}},
		{in: "sub", wantErr: []string{`"sub" is not claim=Header`}},
		{in: "=X-A", wantErr: []string{`"=X-A" is not claim=Header`}},
		{in: "sub=", wantErr: []string{`"sub=" is not claim=Header`}},
		{in: "sub=X A", wantErr: []string{"character other than"}},
		{in: "sub=X:A", wantErr: []string{"character other than"}},
		{in: "sub=Authorization", wantErr: []string{"cannot carry identity"}},
		{in: "sub=host", wantErr: []string{"cannot carry identity"}},
		{in: "sub=Cookie", wantErr: []string{"cannot carry identity"}},
		{in: "sub=X-Forwarded-For", wantErr: []string{"cannot carry identity"}},
		{in: "sub=x-original-uri", wantErr: []string{"cannot carry identity"}},
		{in: "sub=Transfer-Encoding", wantErr: []string{"cannot carry identity"}},
		{
			in:      "sub=Authorization,email,x=Host,a=X-Ok,b=X-Ok",
			wantErr: []string{"Authorization", `"email"`, "Host", "given twice"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := proxy.ParseClaimHeaders(tc.in)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("ParseClaimHeaders = %v, want an error", got)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseClaimHeaders = %v, want %v", got, tc.want)
			}
		})
	}
}
