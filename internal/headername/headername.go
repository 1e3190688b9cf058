// Package headername compares request header names the way CGI-style
// gateways (WSGI, Rack, PHP) and some proxies read them: ignoring ASCII case
// and taking "_" for "-", so that X_Real_IP, x-real-ip and X-Real-IP are one
// header. A check meant to remove or ignore a header must match every
// spelling an upstream may read as it.
package headername

// Is reports whether name is one of lowers (each in lower case with "-") in
// any spelling. It does not allocate.
func Is(name string, lowers []string) bool {
	for _, h := range lowers {
		if len(name) == len(h) && equal(name, h) {
			return true
		}
	}
	return false
}

// HasPrefix reports whether name starts with lower (in lower case with "-")
// in any spelling.
func HasPrefix(name, lower string) bool {
	return len(name) >= len(lower) && equal(name[:len(lower)], lower)
}

// equal compares s with lower; both have the same length.
func equal(s, lower string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '_' {
			c = '-'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
