// Command vault builds the real HashiCorp Vault server from its published
// Go module at the version pinned in go.mod. jit-ssh's tests start it in
// dev mode on a loopback port; it is never part of the product binary.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
