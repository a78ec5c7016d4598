package main

import (
	"bytes"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// mkimage runs this package's main as the Makefile does.
func mkimage(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MKIMAGE_AS_MAIN=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mkimage %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestMain(m *testing.M) {
	if os.Getenv("MKIMAGE_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Two builds of the same inputs are byte for byte equal; build, digest and a
// push to a registry all name the same manifest digest.
func TestBuildReproducibleAndPushSameDigest(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "app")
	if err := os.WriteFile(bin, []byte("#!not really a binary\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	build := func(out string) string {
		line := mkimage(t, "build", "-out", out, "-tag", "example.test/app:1", "-epoch", "1700000000",
			"-file", bin+":/usr/local/bin/app", "-passwd", "-entrypoint", "/usr/local/bin/app",
			"-label", "org.opencontainers.image.title=app", "-expose", "8080")
		f := strings.Fields(line)
		return f[len(f)-1]
	}
	a, b := filepath.Join(dir, "a.tar"), filepath.Join(dir, "b.tar")
	da, db := build(a), build(b)
	ba, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if da != db || !bytes.Equal(ba, bb) {
		t.Fatalf("two builds differ: %s vs %s", da, db)
	}
	if d := mkimage(t, "digest", a); d != da {
		t.Errorf("digest of the tarball = %s, build said %s", d, da)
	}

	reg := httptest.NewServer(registry.New())
	defer reg.Close()
	ref := strings.TrimPrefix(reg.URL, "http://") + "/app:1"
	mkimage(t, "push", "-ref", ref, a)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(r)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != da {
		t.Errorf("pushed digest %s, build said %s", desc.Digest, da)
	}
	if desc.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("pushed media type %s, want an OCI manifest", desc.MediaType)
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"-tag", "x:1", "-file", "/etc/hostname:/h"},                        // no -out
		{"-out", "o.tar", "-tag", "x:1", "-file", "/etc/hostname:relative"}, // relative dest
		{"-out", "o.tar", "-tag", "x:1", "-file", "/etc/hostname:/h", "-label", "novalue"},
		{"-out", "o.tar", "-tag", "x:1", "-file", "/etc/hostname:/h", "-expose", "http"},
	} {
		cmd := exec.Command(os.Args[0], append([]string{"build"}, args...)...)
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), "MKIMAGE_AS_MAIN=1")
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("build %v succeeded: %s", args, out)
		}
	}
}
