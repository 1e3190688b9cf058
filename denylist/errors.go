package denylist

import "strings"

// LoadError is the error of [List.Start] and [List.Reload] when the list
// could not be read or parsed (the list in force stays).
type LoadError struct {
	// Source is the file, or the URL without its query.
	Source string
	// Problem is a client-safe sentence saying what went wrong, without
	// this package's prefix: a caller that names the setting prints it
	// after the name.
	Problem string
	// Err is the underlying error.
	Err error
}

func (e *LoadError) Error() string { return "denylist: " + e.Problem }

func (e *LoadError) Unwrap() error { return e.Err }

// loadError wraps the error of a read or a parse. Those are written, like
// every error of this package, with its prefix; Problem is the rest, so that
// the prefix is said once.
func loadError(source string, err error) *LoadError {
	return &LoadError{Source: source, Problem: strings.TrimPrefix(err.Error(), "denylist: "), Err: err}
}
