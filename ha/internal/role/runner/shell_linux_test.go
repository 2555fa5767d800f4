//go:build linux

package runner

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/hagent/hagent/ha/internal/role"
)

// The loopback interface exists everywhere and New opens no socket: no
// root needed.
func loopback(t *testing.T) *Shell {
	t.Helper()
	s, err := New(Config{Protocol: "vrrp", Interface: "lo", State: "Initialize"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewDefaults(t *testing.T) {
	s := loopback(t)
	if want := netip.MustParseAddr("127.0.0.1"); s.Primary != want {
		t.Errorf("primary %v, want the interface's first IPv4 address %v", s.Primary, want)
	}
	if s.prefixLen != 32 {
		t.Errorf("prefix length %d, want 32 by default", s.prefixLen)
	}
	want := role.Change{Role: role.Passive, Protocol: "vrrp", State: "Initialize", Reason: "not started"}
	if got := s.Current(); got != want {
		t.Errorf("Current before Run = %+v, want %+v", got, want)
	}
	given := netip.MustParseAddr("192.0.2.7")
	if s, err := New(Config{Protocol: "hsrp", Interface: "lo", Primary: given, PrefixLen: 24}); err != nil || s.Primary != given || s.prefixLen != 24 {
		t.Errorf("configured primary and prefix: %v, %d, %v", s.Primary, s.prefixLen, err)
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Protocol: "hsrp", Interface: "nosuch0"}, `hsrp: interface "nosuch0": `},
		{Config{Protocol: "vrrp", Interface: "lo", PrefixLen: 33}, "vrrp: prefix length 33 out of range 1..32"},
		{Config{Protocol: "vrrp", Interface: "lo", PrefixLen: -1}, "vrrp: prefix length -1 out of range 1..32"},
	} {
		if _, err := New(tc.c); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want %q", tc.c, err, tc.want)
		}
	}
	// An interface without IPv4 and no primary configured says what to do.
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	_, err = firstIPv4("vrrp", &net.Interface{Index: lo.Index + 1<<20, Name: "none0"})
	if want := "vrrp: interface none0 has no IPv4 address: configure one or set the primary address"; err == nil || err.Error() != want {
		t.Errorf("firstIPv4 without an IPv4 address: %v, want %q", err, want)
	}
}

// Publish never blocks: a full channel drops the oldest change, and the
// latest always gets through.
func TestPublishDropsOldest(t *testing.T) {
	s := loopback(t)
	n := cap(s.changes) + 5
	for i := range n {
		s.Publish(role.Change{Role: role.Standby, State: "Backup", Reason: string(rune('a' + i))}, "vrrp: role change")
	}
	if got := s.RoleChanges.Load(); got != uint64(n) {
		t.Errorf("RoleChanges = %d, want %d", got, n)
	}
	var got []string
	for len(s.Changes()) > 0 {
		got = append(got, (<-s.Changes()).Reason)
	}
	if len(got) != cap(s.changes) || got[len(got)-1] != string(rune('a'+n-1)) || got[0] != string(rune('a'+n-cap(s.changes))) {
		t.Errorf("delivered %v: want the latest %d in order", got, cap(s.changes))
	}
	if s.Current().Reason != string(rune('a'+n-1)) {
		t.Errorf("Current = %+v, want the latest", s.Current())
	}
}

func TestAnnounceOnlyActive(t *testing.T) {
	s := loopback(t)
	err := s.Announce([]netip.Addr{netip.MustParseAddr("192.0.2.50")}, 3, "master")
	if err == nil || err.Error() != "vrrp: announce: not master; only the active agent answers for away nodes" {
		t.Errorf("Announce while passive: %v", err)
	}
	// Active but Run has not opened the ARP socket (or has closed it).
	s.Publish(role.Change{Role: role.Active}, "vrrp: role change")
	if err := s.Announce(nil, 3, "master"); err == nil {
		t.Error("Announce without an ARP socket: no error")
	}
}

func TestHoldReason(t *testing.T) {
	if HoldReason(true) != "held: not yet initialized from the group" ||
		HoldReason(false) != "initialized from the group (hold released)" {
		t.Error("hold reasons changed: docs/redundancy.md quotes them")
	}
}
