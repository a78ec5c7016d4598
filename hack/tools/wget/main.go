// Command wget is the test node's stand-in for busybox's wget in the chart's
// `helm test` pod (hack/node): the node pulls no images, and Debian's static
// busybox crashes in wget alone in an image (glibc's static resolver). It
// takes the flags the chart passes: wget -q -O- -T SECONDS URL, printing the
// body and exiting 1 on an error or a status other than 2xx, like busybox.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	flag.Bool("q", false, "quiet (always)")
	out := flag.String("O", "-", "output: - for stdout")
	timeout := flag.Int("T", 10, "timeout in seconds")
	// busybox takes -O- joined; the flag package wants -O -.
	var args []string
	for _, a := range os.Args[1:] {
		if a == "-O-" {
			a = "-O=-"
		}
		args = append(args, a)
	}
	_ = flag.CommandLine.Parse(args)
	if flag.NArg() != 1 || *out != "-" {
		fmt.Fprintln(os.Stderr, "usage: wget [-q] -O- [-T seconds] URL")
		os.Exit(2)
	}
	c := http.Client{Timeout: time.Duration(*timeout) * time.Second}
	resp, err := c.Get(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "wget:", err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(os.Stdout, resp.Body)
	if resp.StatusCode/100 != 2 {
		fmt.Fprintln(os.Stderr, "wget: server returned", resp.Status)
		os.Exit(1)
	}
}
