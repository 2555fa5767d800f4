package datapath

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The virtual addresses the active member holds.

func (k *kernel) AddVIP(p netip.Prefix) error {
	if err := k.needHome(); err != nil {
		return err
	}
	if !p.Addr().Is4() {
		return fmt.Errorf("datapath: virtual address %v is not IPv4", p)
	}
	_, err := k.exec(unix.RTM_NEWADDR, netlink.Acknowledge|netlink.Create|netlink.Replace, appendAddr(nil, k.home, p))
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("datapath: adding virtual address %v to %s: %w", p, k.cfg.HomeIfname, err)
	}
	k.vips[p] = true
	return nil
}

func (k *kernel) DelVIP(p netip.Prefix) error {
	if err := k.needHome(); err != nil {
		return err
	}
	_, err := k.exec(unix.RTM_DELADDR, netlink.Acknowledge, appendAddr(nil, k.home, p))
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("datapath: removing virtual address %v from %s: %w", p, k.cfg.HomeIfname, err)
	}
	delete(k.vips, p)
	return nil
}

func (k *kernel) needHome() error {
	if k.home == 0 {
		return errors.New("datapath: Setup has not succeeded (no home interface index)")
	}
	return nil
}
