// Command hagent: placeholder while the foundation is being built.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "hagent: not built yet")
	os.Exit(2)
}
