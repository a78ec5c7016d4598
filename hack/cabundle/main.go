// Command cabundle writes the image's certificate bundle
// (/etc/ssl/certs/ca-certificates.crt, where crypto/x509 looks first on
// Linux): Mozilla's roots as golang.org/x/crypto/x509roots/fallback carries
// them, in PEM, in the bundle's order, so the same module version gives the
// same bytes (make image is reproducible).
//
//	go run ./hack/cabundle FILE
//
// The tenant server (bin/userve-serve) takes its roots from the system, read
// on its first TLS connection, instead of parsing an embedded set at every
// start (docs/install.md, "Build the image"). A root the bundle constrains
// (a distrust-after date) is left out: a PEM file cannot carry the
// constraint, and trusting it unconstrained would trust what Mozilla no
// longer does.
package main

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"os"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run ./hack/cabundle FILE")
		os.Exit(2)
	}
	var b bytes.Buffer
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		if err := pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate}); err != nil {
			fmt.Fprintln(os.Stderr, "cabundle:", err)
			os.Exit(1)
		}
	}
	if err := os.WriteFile(os.Args[1], b.Bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "cabundle:", err)
		os.Exit(1)
	}
}
