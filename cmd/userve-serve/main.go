// Command userve-serve is `userve serve` alone: one tenant's server, in a
// binary that links nothing of the operator (client-go, controller-runtime,
// Kubernetes type registration). Every package linked into a binary runs its
// init and keeps its pages mapped in every process of it, so a tenant pod
// running this binary idles megabytes lighter than one running bin/userve
// (docs/server.md, "Two binaries").
//
// It takes exactly `userve serve`'s flags; the image holds it beside
// /usr/local/bin/userve, and `userve serve` hands over to it when it is there.
package main

import (
	"os"

	"userve.dev/userve/internal/servecmd"
)

func main() { os.Exit(servecmd.Main(os.Args[1:])) }
