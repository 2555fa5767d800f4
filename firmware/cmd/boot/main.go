// Command boot builds a board's image and boots it with the serial console
// on this terminal (`make boot BOARD=...`). The guest's eth0 is on QEMU's
// user-mode network, set up as the reference config's home network
// 192.0.2.0/24 with the guest at 192.0.2.2, and the host's UDP port
// -port (default 4434) forwards to the agent's port 434, so from the host:
//
//	mnsim register -ha 127.0.0.1:4434 -home-agent 192.0.2.2 -home 192.0.2.10 \
//	    -coa 198.51.100.7 -spi 256 -key-hex 00112233445566778899aabbccddeeff
//
// Ctrl-A X quits QEMU; `hainit -poweroff` in the guest stops the agent first.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/hagent/hagent/firmware/vm"
)

func main() {
	fs := flag.NewFlagSet("boot", flag.ExitOnError)
	boardName := fs.String("board", "qemu-arm64", "board under board/")
	port := fs.Int("port", 4434, "host UDP port (127.0.0.1) forwarded to the guest's 434")
	_ = fs.Parse(os.Args[1:])
	if err := run(*boardName, *port); err != nil {
		fmt.Fprintln(os.Stderr, "boot:", err)
		os.Exit(1)
	}
}

func run(boardName string, port int) error {
	root, err := vm.Root()
	if err != nil {
		return err
	}
	img, err := vm.Build(context.Background(), root, boardName, vm.BuildOptions{Log: os.Stderr})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "boot: %s, UDP 127.0.0.1:%d -> guest 192.0.2.2:434; Ctrl-A X quits, `hainit -poweroff` powers off\n", boardName, port)
	return vm.Interactive(vm.Options{
		Image: img, Name: boardName,
		Append: []string{"hagent.ip=eth0:192.0.2.2/24"},
		NICs:   []vm.NIC{{Netdev: fmt.Sprintf("user,net=192.0.2.0/24,host=192.0.2.254,dns=192.0.2.253,dhcpstart=192.0.2.200,hostfwd=udp:127.0.0.1:%d-192.0.2.2:434", port)}},
	}, os.Stdin, os.Stdout)
}
