// Command hactl: placeholder while the foundation is being built.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "hactl: not built yet")
	os.Exit(2)
}
