// Package scopes holds the scopes granted by an access token, the scopes a
// route requires, and the check between the two.
//
// A [Set] is what a token grants. It is built from the space-delimited
// `scope` claim with [Parse] (RFC 6749 §3.3), from a list with [New], or by
// decoding a claim with [Set.UnmarshalJSON], which accepts both a string
// (`scope`, string-form `scp`) and an array of strings (Auth0's
// `permissions`, array-form `scp`). [Union] combines the claims of one token.
//
// A [Requirement] is what a route needs: all of some scopes ([All]) and at
// least one scope of each any-of group ([Any]), combined with
// [Requirement.And]. [Requirement.Satisfied] is the per-request check and
// does not allocate; [Requirement.Missing] and [Requirement.String] explain a
// refusal, the latter in the form RFC 6750 puts in
// `WWW-Authenticate: Bearer error="insufficient_scope", scope="..."`.
//
// Both types are immutable values: they can be shared between goroutines and
// copied freely, and no method changes them.
//
// # Security
//
// Matching is exact and case-sensitive: a granted scope satisfies a required
// scope only if the two are byte-identical. There is no wildcard, prefix,
// hierarchy or case folding. Scope names such as `read:contacts` and
// `read:contacts:all` are independent permissions chosen by the API owner;
// any rule that let one imply the other (prefix matching, `*`) would grant
// access that nobody configured, in either direction.
//
// Granted scopes come from a token whose signature has already been checked,
// so they are not validated: they may contain any bytes, and they are only
// ever compared. [Parse] splits on the space character (U+0020) only, as
// RFC 6749 defines; a tab or other whitespace is part of a scope, so it can
// never match a required scope. The empty scope is never part of a [Set].
//
// Required scopes come from configuration and end up in a response header.
// [Requirement.Validate] (and [ValidToken]) accept only RFC 6749 scope-tokens,
// 1*( %x21 / %x23-5B / %x5D-7E ): printable ASCII without space, `"` or `\`,
// so a requirement can never break out of the quoted-string in
// `WWW-Authenticate`. Validate every requirement when loading configuration.
// An empty required scope is invalid and, since no Set contains it, can never
// be satisfied: an unvalidated mistake fails closed.
package scopes
