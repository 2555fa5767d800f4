//go:build !linux

package main

import (
	"errors"
	"net/netip"
	"os"
)

func openTUN(string, netip.Addr, int) (*os.File, error) {
	return nil, errors.New("TUN devices are supported on Linux only")
}

func tunnelMTU(netip.AddrPort) (int, error) {
	return 0, errors.New("the tunnel MTU is derived on Linux only")
}
