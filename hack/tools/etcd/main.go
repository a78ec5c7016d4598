// Command etcd is etcd's own server main, built from the Go module so that
// envtest and the sandbox need nothing downloaded outside the module proxy.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
