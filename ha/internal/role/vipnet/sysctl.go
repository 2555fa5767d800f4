//go:build linux

package vipnet

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// Sysctls sets interfaces' IPv4 sysctls (/proc/sys/net/ipv4/conf/DEV/KEY,
// in the calling thread's network namespace) and restores the ones it was
// asked to keep. Not safe for concurrent use.
type Sysctls struct {
	saved []savedSysctl
}

// savedSysctl is a kept value. The interface is remembered by index too:
// renamed since (udev, an operator), it is restored under its new name,
// not missed under the old one (or written to another interface that took
// that name).
type savedSysctl struct {
	dev, key, old string
	index         int // 0: unknown, restored by dev
}

func sysctlPath(dev, key string) string { return "/proc/sys/net/ipv4/conf/" + dev + "/" + key }

// Set writes val to dev's key; keep: Restore writes back what was there.
func (s *Sysctls) Set(dev, key, val string, keep bool) error {
	p := sysctlPath(dev, key)
	var old []byte
	if keep {
		var err error
		if old, err = os.ReadFile(p); err != nil {
			return fmt.Errorf("vipnet: reading %s: %w", p, err)
		}
	}
	if err := os.WriteFile(p, []byte(val), 0o644); err != nil {
		return fmt.Errorf("vipnet: setting %s = %s: %w", p, val, err)
	}
	if keep {
		v := savedSysctl{dev: dev, key: key, old: strings.TrimSpace(string(old))}
		if ifi, err := net.InterfaceByName(dev); err == nil {
			v.index = ifi.Index
		}
		s.saved = append(s.saved, v)
	}
	return nil
}

// Restore writes back the kept values, the last set first, and forgets
// them; every one is tried. An interface renamed since Set is found by its
// index.
func (s *Sysctls) Restore() error {
	var errs []error
	for i := len(s.saved) - 1; i >= 0; i-- {
		v := s.saved[i]
		dev := v.dev
		if ifi, err := net.InterfaceByIndex(v.index); v.index > 0 && err == nil {
			dev = ifi.Name
		}
		p := sysctlPath(dev, v.key)
		if err := os.WriteFile(p, []byte(v.old), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("vipnet: restoring %s = %s: %w", p, v.old, err))
		}
	}
	s.saved = nil
	return errors.Join(errs...)
}

// AnnounceOwnAddress sets arp_announce = 2 on dev (kept for Restore): the
// kernel's ARP requests from dev name the interface's own address as
// sender, never a virtual address the packet that needed them came from.
//
// A host that receives a request addressed to it updates its entry for the
// request's sender with the sender's MAC, overriding (neigh_event_ns). A
// member answering from the virtual address would move the hosts' entry for
// the address to its own MAC at each host it resolves; harmless while it
// holds the address, but a member that took the address spuriously and
// answers one more packet as it steps down sends that request after the
// master's re-announcement, and the host keeps the stepped-down member's
// MAC until its entry ages out. The kernel takes the higher of "all" and
// the interface's value, so the interface's 2 suffices.
func (s *Sysctls) AnnounceOwnAddress(dev string) error {
	return s.Set(dev, "arp_announce", "2", true)
}
