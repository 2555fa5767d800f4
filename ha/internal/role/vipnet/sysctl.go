//go:build linux

package vipnet

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Sysctls sets interfaces' IPv4 sysctls (/proc/sys/net/ipv4/conf/DEV/KEY,
// in the calling thread's network namespace) and restores the ones it was
// asked to keep. Not safe for concurrent use.
type Sysctls struct {
	saved []savedSysctl
}

type savedSysctl struct{ path, old string }

// Set writes val to dev's key; keep: Restore writes back what was there.
func (s *Sysctls) Set(dev, key, val string, keep bool) error {
	p := "/proc/sys/net/ipv4/conf/" + dev + "/" + key
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
		s.saved = append(s.saved, savedSysctl{p, strings.TrimSpace(string(old))})
	}
	return nil
}

// Restore writes back the kept values, the last set first, and forgets
// them; every one is tried.
func (s *Sysctls) Restore() error {
	var errs []error
	for i := len(s.saved) - 1; i >= 0; i-- {
		v := s.saved[i]
		if err := os.WriteFile(v.path, []byte(v.old), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("vipnet: restoring %s = %s: %w", v.path, v.old, err))
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
