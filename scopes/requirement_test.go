package scopes_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/scopes"
)

func TestRequirement(t *testing.T) {
	const (
		read  = "read:contacts"
		write = "write:contacts"
		admin = "admin"
	)
	global := scopes.All("api")
	tests := []struct {
		name        string
		req         scopes.Requirement
		granted     string
		want        bool
		wantMissing []string
		wantString  string
	}{
		{name: "zero requires nothing", req: scopes.Requirement{}, granted: "", want: true},
		{name: "All() requires nothing", req: scopes.All(), granted: "", want: true},
		{name: "Any() requires nothing", req: scopes.Any(), granted: "", want: true},

		{name: "all-of met", req: scopes.All(read, write), granted: "openid read:contacts write:contacts", want: true,
			wantString: "read:contacts write:contacts"},
		{name: "all-of one missing", req: scopes.All(write, read), granted: "read:contacts",
			wantMissing: []string{write}, wantString: "read:contacts write:contacts"},
		{name: "all-of none granted", req: scopes.All(read, write), granted: "",
			wantMissing: []string{read, write}, wantString: "read:contacts write:contacts"},
		{name: "all-of duplicates", req: scopes.All(read, read), granted: "",
			wantMissing: []string{read}, wantString: read},
		{name: "no prefix match", req: scopes.All("read:contacts:all"), granted: read,
			wantMissing: []string{"read:contacts:all"}, wantString: "read:contacts:all"},
		{name: "no reverse prefix match", req: scopes.All(read), granted: "read:contacts:all read",
			wantMissing: []string{read}, wantString: read},
		{name: "case-sensitive", req: scopes.All(read), granted: "READ:CONTACTS",
			wantMissing: []string{read}, wantString: read},
		{name: "wildcard granted means nothing", req: scopes.All(read), granted: "* read:*",
			wantMissing: []string{read}, wantString: read},

		{name: "any-of first", req: scopes.Any(write, admin), granted: write, want: true,
			wantString: "admin write:contacts"},
		{name: "any-of second", req: scopes.Any(write, admin), granted: admin, want: true,
			wantString: "admin write:contacts"},
		{name: "any-of none", req: scopes.Any(write, admin), granted: read,
			wantMissing: []string{admin, write}, wantString: "admin write:contacts"},
		{name: "any-of of one is all-of", req: scopes.Any(write), granted: read,
			wantMissing: []string{write}, wantString: write},
		{name: "any-of duplicates", req: scopes.Any(write, write), granted: "",
			wantMissing: []string{write}, wantString: write},

		{name: "and both met", req: scopes.All(read).And(scopes.Any(write, admin)), granted: "read:contacts admin", want: true,
			wantString: "read:contacts admin write:contacts"},
		{name: "and all-of missing", req: scopes.All(read).And(scopes.Any(write, admin)), granted: admin,
			wantMissing: []string{read}, wantString: "read:contacts admin write:contacts"},
		{name: "and any-of missing", req: scopes.All(read).And(scopes.Any(write, admin)), granted: read,
			wantMissing: []string{admin, write}, wantString: "read:contacts admin write:contacts"},
		{name: "and both missing", req: scopes.All(read).And(scopes.Any(write, admin)), granted: "",
			wantMissing: []string{read, admin, write}, wantString: "read:contacts admin write:contacts"},
		{name: "global and route", req: global.And(scopes.All(read)), granted: read,
			wantMissing: []string{"api"}, wantString: "api read:contacts"},
		{name: "and with zero", req: scopes.All(read).And(scopes.Requirement{}), granted: read, want: true,
			wantString: read},
		{name: "zero and", req: scopes.Requirement{}.And(scopes.Any(read, write)), granted: write, want: true,
			wantString: "read:contacts write:contacts"},
		{name: "and merges all-of", req: scopes.All(write, read).And(scopes.All(read, admin)), granted: "",
			wantMissing: []string{admin, read, write}, wantString: "admin read:contacts write:contacts"},
		{name: "two any-of groups, one met", req: scopes.Any(read, write).And(scopes.Any(admin, "root")), granted: read,
			wantMissing: []string{admin, "root"}, wantString: "read:contacts write:contacts admin root"},
		{name: "overlapping groups listed once", req: scopes.Any(read, write).And(scopes.Any(write, admin)), granted: "",
			wantMissing: []string{read, write, admin}, wantString: "read:contacts write:contacts admin"},
		{name: "identical groups", req: scopes.Any(read, write).And(scopes.Any(write, read)), granted: "",
			wantMissing: []string{read, write}, wantString: "read:contacts write:contacts"},
		{name: "all-of scope also in group", req: scopes.All(read).And(scopes.Any(read, write)), granted: "",
			wantMissing: []string{read, write}, wantString: "read:contacts write:contacts"},

		// An empty scope fails Validate and, since no Set holds it, fails
		// closed if Validate was skipped.
		{name: "empty required scope never met", req: scopes.All(""), granted: "a b",
			wantMissing: []string{""}, wantString: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			granted := scopes.Parse(tt.granted)
			if got := tt.req.Satisfied(granted); got != tt.want {
				t.Errorf("Satisfied(%q) = %v, want %v", tt.granted, got, tt.want)
			}
			got := tt.req.Missing(granted)
			if !slices.Equal(got, tt.wantMissing) {
				t.Errorf("Missing(%q) = %q, want %q", tt.granted, got, tt.wantMissing)
			}
			if tt.want != (got == nil) {
				t.Errorf("Missing(%q) = %#v, but Satisfied = %v", tt.granted, got, tt.want)
			}
			if s := tt.req.String(); s != tt.wantString {
				t.Errorf("String() = %q, want %q", s, tt.wantString)
			}
			// Holding everything String lists always satisfies a valid
			// requirement: the challenge hides nothing.
			if tt.req.Validate() == nil && !tt.req.Satisfied(scopes.Parse(tt.req.String())) {
				t.Errorf("not satisfied by its own String() %q", tt.req.String())
			}
		})
	}
}

func TestRequirementIsZero(t *testing.T) {
	for _, tt := range []struct {
		req  scopes.Requirement
		want bool
	}{
		{scopes.Requirement{}, true},
		{scopes.All(), true},
		{scopes.Any(), true},
		{scopes.All().And(scopes.Any()), true},
		{scopes.All("a"), false},
		{scopes.Any("a", "b"), false},
		{scopes.Requirement{}.And(scopes.Any("a", "b")), false},
		{scopes.All(""), false}, // not nothing: an invalid requirement
	} {
		if got := tt.req.IsZero(); got != tt.want {
			t.Errorf("%q.IsZero() = %v, want %v", tt.req, got, tt.want)
		}
	}
}

// And must not change either operand, even when their storage is shared.
func TestRequirementAndImmutable(t *testing.T) {
	base := scopes.Any("a", "b")
	x := base.And(scopes.Any("c", "d"))
	y := base.And(scopes.Any("e", "f"))
	for _, tt := range []struct {
		req  scopes.Requirement
		want string
	}{
		{base, "a b"},
		{x, "a b c d"},
		{y, "a b e f"},
	} {
		if got := tt.req.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
	in := []string{"a", "b"}
	r := scopes.All(in...)
	in[0] = "z"
	if r.String() != "a b" {
		t.Errorf("All kept a reference to its argument: %q", r)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		req     scopes.Requirement
		wantErr []string // substrings, each required; nil means valid
	}{
		{name: "zero", req: scopes.Requirement{}},
		{name: "typical", req: scopes.All("read:contacts", "openid").And(scopes.Any("write:contacts", "admin"))},
		{name: "every allowed byte", req: scopes.All("!#$%&'()*+,-./0123456789:;<=>?@AZ[]^_`az{|}~")},
		{name: "empty", req: scopes.All(""), wantErr: []string{"scopes: empty scope"}},
		{name: "empty in any-of", req: scopes.Any("a", ""), wantErr: []string{"scopes: empty scope"}},
		{name: "double quote", req: scopes.All(`a"b`), wantErr: []string{`scopes: invalid scope "a\"b": a double quote (") at byte 1`}},
		{name: "backslash", req: scopes.All(`a\`), wantErr: []string{`scopes: invalid scope "a\\": a backslash (\) at byte 1`}},
		{name: "space", req: scopes.All("read contacts"), wantErr: []string{`"read contacts": a space at byte 4`}},
		{name: "tab", req: scopes.All("a\tb"), wantErr: []string{`"a\tb": control character 0x09 at byte 1`}},
		{name: "CRLF", req: scopes.All("a\r\nSet-Cookie:x"), wantErr: []string{"control character 0x0d at byte 1"}},
		{name: "NUL", req: scopes.All("a\x00"), wantErr: []string{"control character 0x00"}},
		{name: "DEL", req: scopes.All("a\x7f"), wantErr: []string{"control character 0x7f"}},
		{name: "non-ASCII", req: scopes.All("lire:é"), wantErr: []string{`"lire:é": non-ASCII byte 0xc3 at byte 5`}},
		{name: "invalid UTF-8", req: scopes.All("a\xff"), wantErr: []string{"non-ASCII byte 0xff"}},
		{name: "every problem reported once", req: scopes.All("ok", "a b").And(scopes.Any("a b", `c"`)),
			wantErr: []string{`"a b"`, `"c\""`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.req.Validate()
			if tt.wantErr == nil {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error")
			}
			msg := err.Error()
			for _, w := range tt.wantErr {
				if strings.Count(msg, w) != 1 {
					t.Errorf("Validate() = %q, want %q in it once", msg, w)
				}
			}
			for line := range strings.SplitSeq(msg, "\n") {
				if !strings.HasPrefix(line, "scopes: ") {
					t.Errorf("error line %q lacks the package prefix", line)
				}
			}
		})
	}
}

func TestValidToken(t *testing.T) {
	for c := range 256 {
		want := c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e)
		if got := scopes.ValidToken("a" + string(byte(c)) + "b"); got != want {
			t.Errorf("ValidToken with byte 0x%02x = %v, want %v", c, got, want)
		}
		// Validate must agree with ValidToken.
		if got := scopes.All("a"+string(byte(c))+"b").Validate() == nil; got != want {
			t.Errorf("Validate with byte 0x%02x = %v, want %v", c, got, want)
		}
	}
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"", false},
		{"read:contacts", true},
		{"https://api.example.com/read", true},
		{" ", false},
		{"read:contacts ", false},
	} {
		if got := scopes.ValidToken(tt.in); got != tt.want {
			t.Errorf("ValidToken(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
