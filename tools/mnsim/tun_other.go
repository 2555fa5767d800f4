//go:build !linux

package main

import (
	"errors"
	"net/netip"
	"os"
)

func openTUN(string, netip.Addr) (*os.File, error) {
	return nil, errors.New("TUN devices are supported on Linux only")
}
