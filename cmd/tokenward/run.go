package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
)

// version is the release, set at build time:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/tokenward
//
// When empty, the module version from the build info is used.
var version string

const usage = `tokenward validates OAuth 2.0 bearer access tokens (Auth0, OpenID Connect)
in front of an API: as a sidecar reverse proxy, or as a forward-auth service.

Usage:
  tokenward                   serve: the proxy (or forward-auth service) configured
                              by the TOKENWARD_* environment variables
  tokenward demo [-addr A]    run a self-contained demo on loopback: a test issuer,
                              an echo API behind the proxy, and curl commands to try
                              (-addr defaults to 127.0.0.1:8080; a busy port falls
                              back to a free one)
  tokenward inspect [token|-] decode a token (argument, or stdin) and say whether the
                              proxy configured by the environment would accept it,
                              and why not; exit 0 if accepted, 1 if not
  tokenward version           print the version
  tokenward help              print this help

Exit status: 0 ok, 2 configuration error (nothing was started), 1 otherwise.

Every TOKENWARD_* variable is described, with its default, in the README:
https://github.com/tokenward/tokenward#configuration
`

// errRejected is inspect's verdict when the token would be refused: already
// explained on stdout, so run prints nothing more. Exit status 1.
var errRejected = errors.New("token would be refused")

// usageError is a command line that cannot be run. Exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// run is the whole program but for the process: main wires signals and exits
// with exitCode of what run returns. ctx ends the serving commands
// gracefully. getenv reads configuration variables; stdout gets what a
// command produces (demo's commands, inspect's report, version), stderr the
// logs and errors, which run itself prints.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd, rest := "", args
	if len(args) > 0 {
		cmd, rest = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "":
		err = serve(ctx, getenv, stderr)
	case "demo":
		err = demo(ctx, rest, stdout, stderr)
	case "inspect":
		err = inspect(ctx, rest, getenv, os.Stdin, stdout)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, versionString())
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprint(stderr, usage)
		err = &usageError{fmt.Sprintf("unknown command %q (see above)", cmd)}
	}
	if err != nil && !errors.Is(err, errRejected) {
		fmt.Fprintf(stderr, "tokenward: %v\n", err)
	}
	return err
}

// exitCode maps run's error to the exit status.
func exitCode(err error) int {
	var ce *configError
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ce), errors.As(err, &ue):
		return 2
	}
	return 1
}

// versionString names the build: the version (from -ldflags, else the module
// version), the VCS revision when known, and the Go toolchain.
func versionString() string {
	v, rev := version, ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" && rev != "" {
					rev += "+dirty"
				}
			}
		}
	}
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	s := "tokenward " + v
	if rev != "" {
		s += " (" + rev + ")"
	}
	return fmt.Sprintf("%s %s %s/%s", s, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// newLogger returns the logger of the serving commands: JSON or text lines on
// w, from level up.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// mapGetenv is a getenv over a map.
func mapGetenv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}
