// Command pause is the sandbox process of the test node's pods (hack/node):
// it holds the pod's namespaces, reaps orphaned children and exits on SIGINT
// or SIGTERM, like Kubernetes' C pause, but static Go so that it builds from
// this repository into an image without pulling one.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
