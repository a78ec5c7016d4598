package main

import (
	"flag"
	"fmt"
	"os"
)

func runDev(args []string) int {
	fs := flag.NewFlagSet("userve dev", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	fmt.Fprintln(os.Stderr, "userve dev: not built yet")
	return 1
}
