package main

import (
	"flag"
	"fmt"
	"os"
)

func runOperator(args []string) int {
	fs := flag.NewFlagSet("userve operator", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	fmt.Fprintln(os.Stderr, "userve operator: not built yet")
	return 1
}
