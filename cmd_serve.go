package main

import (
	"flag"
	"fmt"
	"os"
)

func runServe(args []string) int {
	fs := flag.NewFlagSet("userve serve", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	fmt.Fprintln(os.Stderr, "userve serve: not built yet")
	return 1
}
