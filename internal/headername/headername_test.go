package headername_test

import (
	"testing"

	"github.com/tokenward/tokenward/internal/headername"
)

func TestIs(t *testing.T) {
	names := []string{"x-real-ip", "client-cert"}
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"X-Real-IP", true}, {"x_real_ip", true}, {"X_REAL-IP", true}, {"Client_Cert", true},
		{"X-Real-IPs", false}, {"X-Real", false}, {"X.Real.IP", false}, {"", false},
	} {
		if got := headername.Is(tc.name, names); got != tc.want {
			t.Errorf("Is(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"X-Forwarded-Host", true}, {"x_forwarded_anything", true}, {"X-Forwarded", true},
		{"X-Forward", false}, {"Forwarded", false},
	} {
		if got := headername.HasPrefix(tc.name, "x-forwarded"); got != tc.want {
			t.Errorf("HasPrefix(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { headername.Is("X_Real_Ip", names) }); n != 0 {
		t.Errorf("Is allocates %v times", n)
	}
}
