// Command mkimage writes container images without Docker and without pulling a
// base image: one layer holding the given files (a static binary, and
// optionally an /etc/passwd naming the nonroot user), on go-containerregistry.
// The same inputs give the same bytes, so the same sources give the same
// digest.
//
//	mkimage build -out userve.tar -tag userve:dev -file bin/userve:/usr/local/bin/userve \
//	    -passwd -user 65532:65532 -entrypoint /usr/local/bin/userve -cmd --help \
//	    -label org.opencontainers.image.title=userve -expose 8080
//	mkimage push -ref registry.example/userve:v1 userve.tar
//	mkimage digest userve.tar
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "build":
		err = build(os.Args[2:])
	case "push":
		err = push(os.Args[2:])
	case "digest":
		err = digest(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: mkimage build|push|digest ... (see -h of each)")
	os.Exit(2)
}

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

// passwd and group name the users distroless's static image has, so that the
// numeric user 65532 is "nonroot" here too. No entry has a usable shell, and
// the image has none.
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
)

type file struct {
	dest string
	mode int64
	data []byte
}

func build(args []string) error {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	out := fs.String("out", "", "the image tarball to write (docker-archive format: docker load, ctr images import)")
	tag := fs.String("tag", "", "the reference the tarball names the image by")
	user := fs.String("user", "65532:65532", "numeric user:group the image runs as")
	arch := fs.String("arch", runtime.GOARCH, "the binaries' architecture")
	withPasswd := fs.Bool("passwd", false, "add /etc/passwd and /etc/group with root, nobody and nonroot (65532)")
	epoch := fs.Int64("epoch", 0, "creation time in Unix seconds, for the config and every file (SOURCE_DATE_EPOCH)")
	var files, entrypoint, cmd, labels, expose, env list
	fs.Var(&files, "file", "SRC:DEST[:MODE] (octal mode, default 0755), repeatable")
	fs.Var(&entrypoint, "entrypoint", "an entrypoint word, repeatable")
	fs.Var(&cmd, "cmd", "a default argument word, repeatable")
	fs.Var(&labels, "label", "KEY=VALUE, repeatable")
	fs.Var(&expose, "expose", "a TCP port, repeatable")
	fs.Var(&env, "env", "KEY=VALUE, repeatable")
	_ = fs.Parse(args)
	if *out == "" || *tag == "" || len(files) == 0 {
		return errors.New("build needs -out, -tag and at least one -file")
	}
	ref, err := name.NewTag(*tag)
	if err != nil {
		return fmt.Errorf("-tag %q: %w", *tag, err)
	}
	created := time.Unix(*epoch, 0).UTC()

	var content []file
	for _, f := range files {
		parts := strings.Split(f, ":")
		if len(parts) < 2 || len(parts) > 3 || !path.IsAbs(parts[1]) {
			return fmt.Errorf("-file %q: want SRC:/DEST[:MODE]", f)
		}
		mode := int64(0o755)
		if len(parts) == 3 {
			if mode, err = strconv.ParseInt(parts[2], 8, 32); err != nil {
				return fmt.Errorf("-file %q: mode: %w", f, err)
			}
		}
		data, err := os.ReadFile(parts[0])
		if err != nil {
			return err
		}
		content = append(content, file{dest: parts[1], mode: mode, data: data})
	}
	if *withPasswd {
		content = append(content, file{"/etc/passwd", 0o644, []byte(passwd)}, file{"/etc/group", 0o644, []byte(group)})
	}
	layerTar, err := layerBytes(content, created)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return err
	}
	cfg := &v1.ConfigFile{
		Architecture: *arch, OS: "linux", Created: v1.Time{Time: created},
		Config:  v1.Config{User: *user, Entrypoint: entrypoint, Cmd: cmd, Env: env, Labels: map[string]string{}},
		History: []v1.History{{Created: v1.Time{Time: created}, CreatedBy: "mkimage (hack/tools/mkimage)"}},
	}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return fmt.Errorf("-label %q: want KEY=VALUE", l)
		}
		cfg.Config.Labels[k] = v
	}
	if len(expose) > 0 {
		cfg.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range expose {
			if _, err := strconv.ParseUint(p, 10, 16); err != nil {
				return fmt.Errorf("-expose %q: want a port number", p)
			}
			cfg.Config.ExposedPorts[p+"/tcp"] = struct{}{}
		}
	}
	img, err := ociImage([]v1.Layer{layer}, cfg)
	if err != nil {
		return err
	}
	tmp := *out + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s %s %s\n", *out, ref, d)
	return nil
}

// layerBytes is the layer's tar: every parent directory, then the files,
// sorted, owned by root, stamped with one time, so equal inputs give equal bytes.
func layerBytes(files []file, mtime time.Time) ([]byte, error) {
	dirs := map[string]bool{}
	byPath := map[string]file{}
	for _, f := range files {
		p := strings.TrimPrefix(path.Clean(f.dest), "/")
		if _, dup := byPath[p]; dup {
			return nil, fmt.Errorf("%s given twice", f.dest)
		}
		byPath[p] = f
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var names []string
	for d := range dirs {
		names = append(names, d+"/")
	}
	for p := range byPath {
		names = append(names, p)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		hdr := &tar.Header{Name: n, ModTime: mtime, Format: tar.FormatPAX}
		if strings.HasSuffix(n, "/") {
			hdr.Typeflag, hdr.Mode = tar.TypeDir, 0o755
		} else {
			f := byPath[n]
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, f.mode, int64(len(f.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if !strings.HasSuffix(n, "/") {
			if _, err := tw.Write(byPath[n].data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ociImage assembles an image with OCI media types from layers and a config.
// build, push and digest all go through it, so the digest build prints is
// the one a registry gets.
func ociImage(layers []v1.Layer, cfg *v1.ConfigFile) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, err
	}
	// AppendLayers records the layers' diff IDs; the rest is ours.
	base, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.RootFS = base.RootFS
	return mutate.ConfigFile(img, cfg)
}

// load reads a tarball that build wrote, as the same OCI image: the docker
// archive format keeps no manifest media types, so they are set again.
func load(file string) (v1.Image, error) {
	img, err := tarball.ImageFromPath(file, nil)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	var oci []v1.Layer
	for _, l := range layers {
		l, err := tarball.LayerFromOpener(l.Uncompressed, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return nil, err
		}
		oci = append(oci, l)
	}
	return ociImage(oci, cfg)
}

func push(args []string) error {
	fs := flag.NewFlagSet("push", flag.ExitOnError)
	ref := fs.String("ref", "", "registry/name:tag to push to (credentials from ~/.docker/config.json)")
	_ = fs.Parse(args)
	if *ref == "" || fs.NArg() != 1 {
		return errors.New("push needs -ref REF and one image tarball")
	}
	r, err := name.ParseReference(*ref)
	if err != nil {
		return fmt.Errorf("-ref %q: %w", *ref, err)
	}
	img, err := load(fs.Arg(0))
	if err != nil {
		return err
	}
	if err := remote.Write(r, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return err
	}
	d, _ := img.Digest()
	fmt.Printf("pushed %s@%s\n", r.Context(), d)
	return nil
}

func digest(args []string) error {
	if len(args) != 1 {
		return errors.New("digest needs one image tarball")
	}
	img, err := load(args[0])
	if err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Println(d)
	return nil
}
