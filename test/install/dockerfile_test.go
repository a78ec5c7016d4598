package install

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// No Docker engine runs here, so the Dockerfile is checked by reading it, and
// its version stamping by building the binary the same way.
func TestDockerfile(t *testing.T) {
	var froms, runs, users, entrypoints []string
	for _, line := range dockerInstructions(string(mustRead(t, repoPath(t, "Dockerfile")))) {
		word, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(word) {
		case "FROM":
			froms = append(froms, rest)
		case "RUN":
			runs = append(runs, rest)
		case "USER":
			users = append(users, rest)
		case "ENTRYPOINT":
			entrypoints = append(entrypoints, rest)
		}
	}
	if len(froms) < 2 || !strings.Contains(froms[0], " AS build") {
		t.Errorf("want a multi-stage build with a named build stage, got FROM %q", froms)
	}
	if final := froms[len(froms)-1]; final != "gcr.io/distroless/static:nonroot" {
		t.Errorf("final stage %q, want gcr.io/distroless/static:nonroot", final)
	}
	build := slices.IndexFunc(runs, func(r string) bool { return strings.Contains(r, "go build") })
	if build < 0 {
		t.Fatalf("no go build among RUN %q", runs)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=${VERSION}", "-o /out/userve ."} {
		if !strings.Contains(runs[build], want) {
			t.Errorf("the build %q lacks %q", runs[build], want)
		}
	}
	if len(users) == 0 || users[len(users)-1] != "65532:65532" {
		t.Errorf("final USER %q, want the numeric nonroot 65532:65532 (runAsNonRoot can only verify numbers)", users)
	}
	if len(entrypoints) != 1 || entrypoints[0] != `["/usr/local/bin/userve"]` {
		t.Errorf("ENTRYPOINT %q, want the userve binary, so that `operator` and `serve` are its args", entrypoints)
	}

	// The build context keeps what go build needs.
	for _, line := range strings.Split(string(mustRead(t, repoPath(t, ".dockerignore"))), "\n") {
		p := strings.TrimSpace(line)
		if slices.Contains([]string{"*.go", "**/*.go", "go.mod", "go.sum", "api", "controllers", "server", "*"}, p) {
			t.Errorf(".dockerignore excludes %q, which the build needs", p)
		}
	}

	// -X main.version reaches `userve version`.
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || strings.TrimSpace(string(out)) != builtVersion {
		t.Errorf("userve version = %q (%v), want %q", out, err, builtVersion)
	}
}

// dockerInstructions joins continuation lines and drops comments.
func dockerInstructions(dockerfile string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(dockerfile, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		if s := strings.Join(strings.Fields(cur.String()), " "); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	return out
}
