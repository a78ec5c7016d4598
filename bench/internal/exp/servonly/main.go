package main

import (
	"fmt"
	"os"

	"userve.dev/userve/server"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/store"
)

func main() {
	if len(os.Args) > 1 {
		_ = server.New
		_ = config.Load
		_ = store.Connect
	}
	fmt.Println("ok")
}
