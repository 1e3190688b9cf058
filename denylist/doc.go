// Package denylist revokes access tokens that are still valid by their
// signature and expiry: by "jti", and by subject with a not-before time ("log
// this user out everywhere"). A JWT cannot be revoked by its issuer once
// issued, so a resource server that must cut one off keeps its own list.
//
// A [List] is loaded from a file, which is watched, or from a URL, which is
// polled, and is reloaded without a restart. Its [List.Revoked] method is
// what [middleware.ValidatorOptions.Revoked] calls; a token on the list is
// refused with 401 invalid_token "token revoked":
//
//	list, err := denylist.New(denylist.Options{File: "/etc/tokenward/denylist.json"})
//	...
//	if err := list.Start(ctx); err != nil { ... } // the first load
//	defer list.Close()
//	v, err := middleware.NewValidator(issuers, audiences, middleware.ValidatorOptions{Revoked: list.Revoked})
//
// # Format
//
// The list is a JSON object with two optional members:
//
//	{
//	  "jti": ["4f1c0d1e-...", "a9b2..."],
//	  "sub": [
//	    {"sub": "auth0|123", "before": "2026-11-22T10:00:00Z"}
//	  ]
//	}
//
// "jti" lists revoked token IDs. "sub" lists subjects whose tokens issued
// before "before" (RFC 3339) are revoked, as are their tokens without "iat";
// tokens issued to them afterwards are not, so the user can sign in again.
// When a subject is listed twice, the later time counts. "{}" is an empty
// list. Parsing is strict, so that a typo does not silently revoke nothing:
// no other members, no empty strings, "before" required, nothing after the
// object, and member names exactly as shown, each at most once per object
// (encoding/json would keep the last of two "jti" members, and read "JTI"
// as "jti", dropping revocations). The size (default 16 MiB) and the number of entries (default
// 1,000,000) are limited. Entries can be removed once the tokens they name
// have expired (24 hours for a default Auth0 API token).
//
// # Reloading
//
// A file is checked every Interval (default 5 s): when its modification time
// or size changed, or it changed within the last 2 s (for file systems with
// coarse timestamps), it is read, and loaded if its SHA-256 differs from what
// was last read. Polling a stat is nearly free, needs no fsnotify dependency,
// and is more reliable than inotify for this: a Kubernetes ConfigMap update
// replaces a symbolic link rather than writing the file (an inotify watch on
// the old file sees nothing, and the path is re-resolved on every stat
// here), editors and configuration tools replace files by renaming, and
// network and overlay file systems do not deliver inotify events at all. A
// revocation then takes effect within Interval, which is small next to a
// token's lifetime. Write the file atomically (write elsewhere, then rename);
// a half-written file fails to parse, and the next write is picked up.
//
// A URL is fetched every Interval (default 30 s, ±10% jitter) with
// If-None-Match, so an unchanged list costs a 304.
//
// # Security
//
//   - Fail safe on reload: a list that cannot be read (missing file, HTTP
//     error, timeout, too large) or parsed keeps the list in force. The
//     failure is logged (once per distinct error) and counted in
//     [Status.ReloadErrors], with [Status.LastError] and [Status.LastCheck]
//     for alerts on a stale list.
//   - Until a list has been loaded, nothing is revoked: [List.Start] returns
//     the first load's error so that a caller can refuse to run without it.
//   - [List.Revoked] reads an immutable snapshot through an atomic pointer:
//     no lock, no allocation, nothing a request can make slow.
//   - A URL must be https (http only on a loopback host), without user
//     info; redirects are followed only to such URLs; the query, which may
//     carry a credential, is never logged.
//   - Parsing is strict: a member given twice or spelt in another case
//     ("JTI", "Sub") is refused, since encoding/json would silently keep
//     one of the two and drop the other's revocations.
//   - Logs name the source and the failure, never a listed value.
package denylist
