package scopes_test

import (
	"encoding/json"
	"fmt"

	"github.com/tokenward/tokenward/scopes"
)

// A token's scopes come from its `scope` claim and, with Auth0 RBAC, its
// `permissions` claim; a route's requirement is checked against their union.
func Example() {
	var claims struct {
		Scope       scopes.Set `json:"scope"`
		Permissions scopes.Set `json:"permissions"`
	}
	payload := `{"scope":"openid profile","permissions":["read:contacts","write:contacts"]}`
	if err := json.Unmarshal([]byte(payload), &claims); err != nil {
		fmt.Println(err)
		return
	}
	granted := scopes.Union(claims.Scope, claims.Permissions)

	// Checked once, at configuration time.
	route := scopes.All("read:contacts").And(scopes.Any("write:contacts", "admin"))
	if err := route.Validate(); err != nil {
		fmt.Println(err)
		return
	}

	fmt.Println(granted)
	fmt.Println(route.Satisfied(granted))
	// Output:
	// openid profile read:contacts write:contacts
	// true
}

func ExampleParse() {
	s := scopes.Parse("  openid read:contacts  openid ")
	fmt.Println(s.Len(), s.List())
	fmt.Println(s.Has("read:contacts"), s.Has("read:contacts:all"), s.Has("READ:CONTACTS"))
	// Output:
	// 2 [openid read:contacts]
	// true false false
}

func ExampleSet_UnmarshalJSON() {
	for _, claim := range []string{
		`"openid read:contacts"`,
		`["read:contacts", "write:contacts"]`,
		`null`,
		`42`,
		`["read:contacts", 1]`,
	} {
		var s scopes.Set
		if err := json.Unmarshal([]byte(claim), &s); err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Printf("%q\n", s.List())
	}
	// Output:
	// ["openid" "read:contacts"]
	// ["read:contacts" "write:contacts"]
	// []
	// error: scopes: claim is a number, want a string, an array of strings, or null
	// error: scopes: array element 1 is a number, want a string
}

func ExampleUnion() {
	scope := scopes.Parse("openid read:contacts")
	permissions := scopes.New("read:contacts", "write:contacts")
	fmt.Println(scopes.Union(scope, permissions))
	// Output: openid read:contacts write:contacts
}

func ExampleRequirement_Satisfied() {
	route := scopes.All("read:contacts")
	for _, granted := range []string{
		"read:contacts",
		"openid read:contacts write:contacts",
		"read:contacts:all", // no prefix matching
		"Read:Contacts",     // case-sensitive
		"",
	} {
		fmt.Printf("%q: %v\n", granted, route.Satisfied(scopes.Parse(granted)))
	}
	// Output:
	// "read:contacts": true
	// "openid read:contacts write:contacts": true
	// "read:contacts:all": false
	// "Read:Contacts": false
	// "": false
}

func ExampleRequirement_And() {
	global := scopes.All("api")                    // TOKENWARD_REQUIRED_SCOPES
	route := scopes.Any("write:contacts", "admin") // a route's any_scopes
	fmt.Println(global.And(route).Satisfied(scopes.Parse("api admin")))
	fmt.Println(global.And(route).Satisfied(scopes.Parse("admin")))
	// Output:
	// true
	// false
}

func ExampleRequirement_Missing() {
	route := scopes.All("read:contacts", "openid").And(scopes.Any("write:contacts", "admin"))
	fmt.Println(route.Missing(scopes.Parse("openid")))
	fmt.Println(route.Missing(scopes.Parse("openid read:contacts admin")) == nil)
	// Output:
	// [read:contacts admin write:contacts]
	// true
}

// String is the scope attribute of an RFC 6750 insufficient_scope challenge.
// The header cannot express "one of", so an any-of group is listed whole.
func ExampleRequirement_String() {
	route := scopes.All("read:contacts").And(scopes.Any("write:contacts", "admin"))
	fmt.Printf("Bearer error=\"insufficient_scope\", scope=\"%s\"\n", route.String())
	// Output: Bearer error="insufficient_scope", scope="read:contacts admin write:contacts"
}

func ExampleRequirement_Validate() {
	route := scopes.All("read:contacts", `read"contacts`).And(scopes.Any("", "admin"))
	fmt.Println(route.Validate())
	// Output:
	// scopes: invalid scope "read\"contacts": a double quote (") at byte 4 is not allowed
	// scopes: empty scope
}
