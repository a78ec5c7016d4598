package install

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/x509roots/fallback/bundle"
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
	// Both binaries (userve, and userve-serve for tenant pods), into /out/.
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=${VERSION}", "-o /out/ . ./cmd/userve-serve"} {
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

// `make image` writes the image the Dockerfile describes (no Docker here to
// build that one): same user, entrypoint, default args, ports, labels and
// binaries, and the same bytes when built twice from the same binaries
// (make image-tar takes userve-serve from beside IMAGE_BINARY).
func TestImageMatchesDockerfile(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var tars [][]byte
	for _, name := range []string{"a.tar", "b.tar"} {
		tar := filepath.Join(dir, name)
		cmd := exec.Command("make", "-s", "--no-print-directory", "image-tar", "IMG=userve:image-test",
			"IMAGE_BINARY="+bin, "IMAGE_TAR="+tar, "VERSION="+builtVersion, "SOURCE_DATE_EPOCH=1700000000")
		cmd.Dir = repoPath(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make image-tar: %v\n%s", err, out)
		}
		tars = append(tars, mustRead(t, tar))
	}
	if !bytes.Equal(tars[0], tars[1]) {
		t.Errorf("two builds of the same binary differ (%d and %d bytes): the image is not reproducible", len(tars[0]), len(tars[1]))
	}
	cfg, files := readImage(t, tars[0])
	layerFiles := slices.Collect(maps.Keys(files))

	df := map[string][]string{}
	for _, line := range dockerInstructions(string(mustRead(t, repoPath(t, "Dockerfile")))) {
		word, rest, _ := strings.Cut(line, " ")
		df[strings.ToUpper(word)] = append(df[strings.ToUpper(word)], rest)
	}
	if want := df["USER"][len(df["USER"])-1]; cfg.Config.User != want {
		t.Errorf("image user %q, Dockerfile USER %q", cfg.Config.User, want)
	}
	if got, want := jsonList(cfg.Config.Entrypoint), df["ENTRYPOINT"][0]; got != want {
		t.Errorf("image entrypoint %s, Dockerfile ENTRYPOINT %s", got, want)
	}
	if got, want := jsonList(cfg.Config.Cmd), df["CMD"][0]; got != want {
		t.Errorf("image cmd %s, Dockerfile CMD %s", got, want)
	}
	var wantPorts []string
	for _, e := range df["EXPOSE"] {
		for _, p := range strings.Fields(e) {
			wantPorts = append(wantPorts, p+"/tcp")
		}
	}
	var gotPorts []string
	for p := range cfg.Config.ExposedPorts {
		gotPorts = append(gotPorts, p)
	}
	slices.Sort(wantPorts)
	slices.Sort(gotPorts)
	if !slices.Equal(gotPorts, wantPorts) {
		t.Errorf("image ports %v, Dockerfile EXPOSE %v", gotPorts, wantPorts)
	}
	wantLabels := dockerLabels(t, strings.Join(df["LABEL"], " "))
	for k, v := range wantLabels {
		wantLabels[k] = strings.ReplaceAll(v, "${VERSION}", builtVersion)
	}
	if !maps.Equal(cfg.Config.Labels, wantLabels) {
		t.Errorf("image labels %v\nDockerfile LABEL %v", cfg.Config.Labels, wantLabels)
	}
	// The binaries, the user database, the CA bundle, nothing else: no
	// shell. userve-serve sits beside userve, where `userve serve` looks for
	// it; the bundle where crypto/x509 reads it (the Dockerfile's distroless
	// base has one there too).
	slices.Sort(layerFiles)
	if want := []string{"etc/group", "etc/passwd", "etc/ssl/certs/ca-certificates.crt", "usr/local/bin/userve", "usr/local/bin/userve-serve"}; !slices.Equal(layerFiles, want) {
		t.Errorf("image files %v, want %v", layerFiles, want)
	}
	checkCABundle(t, files["etc/ssl/certs/ca-certificates.crt"])
}

// checkCABundle: the image's bundle is Mozilla's roots as x509roots/fallback
// carries them (what bin/userve embeds), every one but the constrained,
// each a CA certificate that parses.
func checkCABundle(t *testing.T, pemData []byte) {
	t.Helper()
	var inBundle, constrained int
	want := map[string]bool{}
	for r := range bundle.Roots() {
		inBundle++
		if r.Constraint != nil {
			constrained++
			continue
		}
		want[string(r.Certificate)] = true
	}
	got := 0
	for rest := pemData; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		got++
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil || !cert.IsCA {
			t.Errorf("bundle certificate %d: %v (CA: %v)", got, err, err == nil && cert.IsCA)
			continue
		}
		if !want[string(block.Bytes)] {
			t.Errorf("bundle certificate %q is not among x509roots' unconstrained roots", cert.Subject)
		}
		delete(want, string(block.Bytes))
	}
	if len(want) > 0 || inBundle < 100 || constrained > 5 {
		t.Errorf("the image's bundle lacks %d of x509roots' %d roots (%d constrained, left out)", len(want), inBundle, constrained)
	}
}

type imageConfig struct {
	Config struct {
		User         string
		Entrypoint   []string
		Cmd          []string
		ExposedPorts map[string]struct{}
		Labels       map[string]string
	} `json:"config"`
}

// readImage reads a docker-archive tarball: its config, and the regular
// files of its layers by path.
func readImage(t *testing.T, data []byte) (imageConfig, map[string][]byte) {
	t.Helper()
	entries := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		entries[h.Name] = b
	}
	var manifest []struct {
		Config string
		Layers []string
	}
	if err := json.Unmarshal(entries["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("manifest.json: %v (%d images)", err, len(manifest))
	}
	var cfg imageConfig
	if err := json.Unmarshal(entries[manifest[0].Config], &cfg); err != nil {
		t.Fatalf("config: %v", err)
	}
	files := map[string][]byte{}
	for _, l := range manifest[0].Layers {
		zr, err := gzip.NewReader(bytes.NewReader(entries[l]))
		if err != nil {
			t.Fatalf("layer %s: %v", l, err)
		}
		lr := tar.NewReader(zr)
		for {
			h, err := lr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeReg {
				if files[h.Name], err = io.ReadAll(lr); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return cfg, files
}

func jsonList(words []string) string {
	b, _ := json.Marshal(words)
	return string(b)
}

// dockerLabels parses LABEL k="v" k2=v2 ... as the Dockerfile writes them.
func dockerLabels(t *testing.T, s string) map[string]string {
	t.Helper()
	labels := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			t.Fatalf("LABEL: no = in %q", s)
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				t.Fatalf("LABEL: unterminated quote in %q", rest)
			}
			v, s = rest[1:end+1], rest[end+2:]
		} else {
			v, s, _ = strings.Cut(rest, " ")
		}
		labels[k] = v
	}
	return labels
}
