package node

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"userve.dev/userve/controllers/render"
)

// tenantPodsRunTheServeBinary: the containers of the dedicated tenants'
// pods (minimal 1, acme 2) run /usr/local/bin/userve-serve, which the image
// holds beside userve and `userve serve` became (docs/server.md, "Two
// binaries"), and find the image's CA bundle where crypto/x509 reads it.
// The processes are found from the node's side (this test shares its PID
// namespace): every process whose arguments name the tenant config.
func (n *node) tenantPodsRunTheServeBinary(t *testing.T) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	lean := 0
	for _, cmdline := range procs {
		raw, err := os.ReadFile(cmdline)
		if err != nil || !bytes.Contains(raw, []byte("\x00--config\x00"+render.ConfigPath+"\x00")) {
			continue
		}
		dir := filepath.Dir(cmdline)
		exe, err := os.Readlink(filepath.Join(dir, "exe"))
		if err != nil {
			continue // gone meanwhile
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if exe != "/usr/local/bin/userve-serve" {
			t.Errorf("a tenant's server (%s) runs %s, want /usr/local/bin/userve-serve", strings.Join(args, " "), exe)
			continue
		}
		lean++
		if _, err := os.Stat(filepath.Join(dir, "root", "etc/ssl/certs/ca-certificates.crt")); err != nil {
			t.Errorf("the tenant container (%s) has no CA bundle: %v", args[0], err)
		}
	}
	if lean < 3 {
		t.Errorf("%d tenant server processes run userve-serve, want the 3 of minimal and acme", lean)
	}
}
