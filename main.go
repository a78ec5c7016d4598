// Command userve is both the operator and the tenant server, in one image:
//
//	userve operator   the manager that reconciles UserServices
//	userve serve      one tenant's user service (it becomes cmd/userve-serve,
//	                  the same server without the operator's libraries, when
//	                  that binary sits beside this one, as in the image)
//	userve pool       many tenants' user services in one process (a UserServicePool)
//	userve import     bulk import of users into a tenant
//	userve export     a tenant's users as JSON Lines
//
// The local sandbox is its own binary, cmd/userve-dev (make dev): it links
// test machinery (envtest) that must stay out of the image's binary.
package main

import (
	"fmt"
	"os"

	// Embedded roots (Mozilla's) for TLS where the system has none (Go uses
	// them only then): a host without a bundle, an image without one. The
	// image holds them as a file too, which userve-serve reads instead.
	_ "golang.org/x/crypto/x509roots/fallback"
)

// Set with -ldflags "-X main.version=...".
var version = "dev"

var commands = []struct {
	name, summary string
	run           func(args []string) int
}{
	{"operator", "run the manager that reconciles UserServices", runOperator},
	{"serve", "serve one tenant's user API", runServe},
	{"pool", "serve the tenants of a UserServicePool, many in one process", runPool},
	{"import", "import users from a MinApp, ThinkSNS Plus or userve export into a tenant", runImport},
	{"export", "export a tenant's users as JSON Lines", runExport},
}

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) == 0 {
		usage(os.Stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(os.Stdout)
		return 0
	case "version", "--version":
		fmt.Println(version)
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(args[1:])
		}
	}
	if args[0] == "dev" {
		fmt.Fprintln(os.Stderr, "userve: the local sandbox is not in this binary (the image's); it is bin/userve-dev: run `make dev`")
		return 2
	}
	fmt.Fprintf(os.Stderr, "userve: unknown command %q\n", args[0])
	usage(os.Stderr)
	return 2
}

func usage(w *os.File) {
	fmt.Fprintln(w, "usage: userve <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'userve <command> --help' for a command's flags.")
}
