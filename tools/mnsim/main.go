// Command mnsim: placeholder while the foundation is being built.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "mnsim: not built yet")
	os.Exit(2)
}
