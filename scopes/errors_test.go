package scopes_test

import (
	"errors"
	"testing"

	"github.com/tokenward/tokenward/scopes"
)

// Validate reports each invalid scope as an *InvalidScopeError whose Problem
// has no package prefix.
func TestValidateInvalidScopeError(t *testing.T) {
	err := scopes.All("read:contacts", `bad"scope`, "").Validate()
	var got []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ie *scopes.InvalidScopeError
		if !errors.As(e, &ie) {
			t.Fatalf("%v is not an *InvalidScopeError", e)
		}
		if e.Error() != "scopes: "+ie.Problem {
			t.Errorf("Error() = %q, want the prefix and Problem %q", e, ie.Problem)
		}
		got = append(got, ie.Scope)
	}
	if len(got) != 2 || got[0] != "" || got[1] != `bad"scope` {
		t.Errorf("invalid scopes = %q, want the empty one and bad\"scope", got)
	}
}
