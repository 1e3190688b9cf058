package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int    // where it starts
	cmd  string // upper case: FROM, RUN, ...
	args string
}

// stage is one FROM and the instructions up to the next.
type stage struct {
	name  string // AS name, or its index
	image string // ARGs substituted
	from  instruction
	body  []instruction
}

// parseDockerfile splits a Dockerfile into instructions: comment lines are
// dropped (inside continuations too, as Docker does), lines ending in a
// backslash continue on the next. Heredocs are not supported.
func parseDockerfile(text string) ([]instruction, error) {
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || trimmed == "" && cur.Len() == 0 {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if body, ok := strings.CutSuffix(strings.TrimRight(line, " \t\r"), "\\"); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		if strings.Contains(args, "<<") {
			return nil, fmt.Errorf("line %d: heredocs are not supported by these checks", start)
		}
		out = append(out, instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.Join(strings.Fields(args), " ")})
		cur.Reset()
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("line %d: continuation runs past the end of the file", start)
	}
	return out, nil
}

// stages groups instructions by FROM, substituting the ARGs declared before
// the first FROM (with their defaults) in the image names.
func stages(ins []instruction) ([]stage, error) {
	args := map[string]string{}
	var out []stage
	for _, in := range ins {
		switch {
		case in.cmd == "FROM":
			fields := strings.Fields(in.args)
			fields = slices.DeleteFunc(fields, func(f string) bool { return strings.HasPrefix(f, "--") })
			if len(fields) != 1 && !(len(fields) == 3 && strings.EqualFold(fields[1], "AS")) {
				return nil, fmt.Errorf("line %d: FROM %s: want FROM image [AS name]", in.line, in.args)
			}
			s := stage{name: fmt.Sprint(len(out)), image: expandArgs(fields[0], args), from: in}
			if len(fields) == 3 {
				s.name = fields[2]
			}
			out = append(out, s)
		case len(out) == 0:
			if in.cmd != "ARG" {
				return nil, fmt.Errorf("line %d: %s before the first FROM", in.line, in.cmd)
			}
			name, def, _ := strings.Cut(in.args, "=")
			args[name] = def
		default:
			out[len(out)-1].body = append(out[len(out)-1].body, in)
		}
	}
	return out, nil
}

var argRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

func expandArgs(s string, args map[string]string) string {
	return argRef.ReplaceAllStringFunc(s, func(ref string) string {
		name := argRef.FindStringSubmatch(ref)[1]
		if v, ok := args[name]; ok {
			return v
		}
		return ref
	})
}

func (s stage) find(cmd string) []instruction {
	var out []instruction
	for _, in := range s.body {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// TestDockerfile checks what the image promises: a static, trimmed build of
// ./cmd/tokenward on the Go version of go.mod, its module download in a layer
// of its own, and a final stage on distroless static (or scratch) holding
// only the binary, running as non-root, with the binary as entrypoint.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	ins, err := parseDockerfile(string(data))
	if err != nil {
		t.Fatal(err)
	}
	ss, err := stages(ins)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) < 2 {
		t.Fatalf("%d stage(s); want a build stage and a runtime stage", len(ss))
	}
	final := ss[len(ss)-1]

	// The final stage: the binary, copied from the build stage.
	copies := final.find("COPY")
	if len(copies) == 0 {
		t.Fatal("final stage copies nothing")
	}
	var build *stage
	var binary, built string
	for _, c := range copies {
		fields := strings.Fields(c.args)
		from := ""
		var paths []string
		for _, f := range fields {
			if v, ok := strings.CutPrefix(f, "--from="); ok {
				from = v
			} else if !strings.HasPrefix(f, "--") {
				paths = append(paths, f)
			}
		}
		if from == "" || len(paths) != 2 {
			continue
		}
		if i := slices.IndexFunc(ss, func(s stage) bool { return s.name == from }); i >= 0 && strings.HasPrefix(ss[i].image, "golang:") {
			build, built, binary = &ss[i], paths[0], paths[1]
		}
	}
	if build == nil {
		t.Fatal("final stage copies nothing from a golang build stage (COPY --from=<stage> <binary> <path>)")
	}

	switch {
	case strings.HasPrefix(final.image, "gcr.io/distroless/static"):
		if !strings.HasSuffix(final.image, ":nonroot") && !strings.Contains(final.image, ":nonroot@") {
			t.Logf("final image %s: the :nonroot variant also makes a missing USER safe", final.image)
		}
	case final.image == "scratch":
		if !slices.ContainsFunc(copies, func(c instruction) bool { return strings.Contains(c.args, "ca-certificates") }) {
			t.Error("scratch has no CA certificates: copy them in, or tokenward cannot fetch any issuer's keys over https")
		}
	default:
		t.Errorf("final image %s: want gcr.io/distroless/static* or scratch", final.image)
	}
	if runs := final.find("RUN"); len(runs) > 0 {
		t.Errorf("line %d: RUN in the final stage: it has no shell", runs[0].line)
	}

	users := final.find("USER")
	if len(users) == 0 {
		t.Error("final stage sets no USER")
	} else {
		u := users[len(users)-1].args
		name, _, _ := strings.Cut(u, ":")
		if name == "root" || name == "0" || name == "" {
			t.Errorf("USER %s: run as non-root", u)
		} else if name != fmt.Sprint(nonrootUID) && name != "nonroot" {
			t.Errorf("USER %s: the manifests' runAsUser is %d (distroless nonroot)", u, nonrootUID)
		}
	}

	eps := final.find("ENTRYPOINT")
	if len(eps) == 0 {
		t.Error("final stage has no ENTRYPOINT")
	} else {
		var argv []string
		if err := json.Unmarshal([]byte(eps[len(eps)-1].args), &argv); err != nil || len(argv) == 0 {
			t.Errorf("ENTRYPOINT %s: use the exec form, [\"%s\"]: the shell form needs a shell", eps[len(eps)-1].args, binary)
		} else if argv[0] != binary {
			t.Errorf("ENTRYPOINT runs %s, but the binary is copied to %s", argv[0], binary)
		}
	}

	var exposed []string
	for _, e := range final.find("EXPOSE") {
		exposed = append(exposed, strings.Fields(e.args)...)
	}
	for _, port := range []string{"8080", "9090"} { // TOKENWARD_LISTEN_ADDR, TOKENWARD_ADMIN_ADDR defaults
		if !slices.Contains(exposed, port) && !slices.Contains(exposed, port+"/tcp") {
			t.Errorf("EXPOSE lacks %s", port)
		}
	}

	// The build stage.
	if tag := strings.TrimPrefix(build.image, "golang:"); tag == "" || tag == "latest" || strings.Contains(tag, "$") {
		t.Errorf("build image %s: pin the Go version", build.image)
	} else if goVersion := goModVersion(t); !strings.HasPrefix(tag, goVersion+"-") && tag != goVersion && !strings.HasPrefix(tag, goVersion+".") {
		t.Errorf("build image %s: go.mod says go %s", build.image, goVersion)
	}
	var goBuild *instruction
	for _, r := range build.find("RUN") {
		if strings.Contains(r.args, "go build") {
			goBuild = &r
		}
	}
	if goBuild == nil {
		t.Fatal("build stage has no RUN go build")
	}
	cgoOff := strings.Contains(goBuild.args, "CGO_ENABLED=0") ||
		slices.ContainsFunc(build.find("ENV"), func(in instruction) bool { return strings.Contains(in.args, "CGO_ENABLED=0") })
	if !cgoOff {
		t.Error("go build without CGO_ENABLED=0: the binary must be static for distroless static or scratch")
	}
	for _, want := range []string{"-trimpath", "./cmd/tokenward", "-o " + built} {
		if !strings.Contains(goBuild.args, want) {
			t.Errorf("line %d: go build lacks %s", goBuild.line, want)
		}
	}
	if !strings.Contains(goBuild.args, "-X main.version=") {
		t.Errorf("line %d: go build does not stamp main.version", goBuild.line)
	}

	// Dependencies in a layer of their own, before the sources.
	step := func(match func(instruction) bool) int {
		return slices.IndexFunc(build.body, match)
	}
	copyMod := step(func(in instruction) bool {
		return in.cmd == "COPY" && strings.Contains(in.args, "go.mod") && strings.Contains(in.args, "go.sum") && !strings.Contains(in.args, ". .")
	})
	download := step(func(in instruction) bool { return in.cmd == "RUN" && strings.Contains(in.args, "go mod download") })
	copyAll := step(func(in instruction) bool { return in.cmd == "COPY" && strings.HasPrefix(in.args, ". ") })
	if copyMod < 0 || download < 0 || copyAll < 0 || !(copyMod < download && download < copyAll) {
		t.Error("want COPY go.mod go.sum, then RUN go mod download, then COPY . . so that the module download layer stays cached")
	}
}

// goModVersion returns the main module's Go version, major.minor.
func goModVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(data)
	if m == nil {
		t.Fatal("../go.mod has no go directive")
	}
	return string(m[1])
}

// dockerignored reports whether the .dockerignore patterns exclude name
// (slash-separated, relative to the context), approximating Docker's rules:
// the last matching pattern wins, "!" re-includes, "**/" matches any number
// of directories, and excluding a directory excludes what it holds.
func dockerignored(patterns []string, name string) bool {
	ignored := false
	for _, p := range patterns {
		negate := strings.HasPrefix(p, "!")
		p = path.Clean(strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/"))
		if matchesPath(p, name) {
			ignored = !negate
		}
	}
	return ignored
}

func matchesPath(pattern, name string) bool {
	parts := strings.Split(name, "/")
	for i := 1; i <= len(parts); i++ { // name and each of its parents
		prefix := strings.Join(parts[:i], "/")
		if rest, ok := strings.CutPrefix(pattern, "**/"); ok {
			for j := 0; j < i; j++ {
				if m, _ := path.Match(rest, strings.Join(parts[j:i], "/")); m {
					return true
				}
			}
			continue
		}
		if m, _ := path.Match(pattern, prefix); m {
			return true
		}
	}
	return false
}

// TestDockerignore checks that the build context keeps what the build needs
// and leaves out the repository's history and what the image never uses.
func TestDockerignore(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for line := range strings.Lines(string(data)) {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	for _, keep := range []string{"go.mod", "go.sum", "cmd/tokenward/main.go", "proxy/proxy.go", "jwks/jwkstest/issuer.go"} {
		if dockerignored(patterns, keep) {
			t.Errorf("%s is excluded from the build context; the build needs it", keep)
		}
	}
	for _, drop := range []string{".git/HEAD", "deploy/go.mod", "proxy/proxy_test.go", "middleware.test", "bench/results/x.txt"} {
		if !dockerignored(patterns, drop) {
			t.Errorf("%s is in the build context", drop)
		}
	}
}
