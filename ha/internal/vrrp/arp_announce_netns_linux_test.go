package vrrp

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/role/roletest"
	"github.com/hagent/hagent/tools/lab"
)

// A member that answers from the virtual address resolves the host it
// answers with an ARP request. Sent with the virtual address as its sender,
// that request moves the host's entry for the address to the member's own
// MAC (the kernel updates the sender's entry of a request addressed to it,
// overriding). A member that took over spuriously and is stepping down
// then undoes the master's re-announcement by answering one last renewal:
// seen as a host whose entry stayed on the stepped-down member, every
// renewal timing out until the entry aged out. The member's requests must
// carry its own address; the host's entry for the virtual address moves
// only with announcements.
func TestMasterARPRequestsLeaveVirtualEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("netns test (not in -short)")
	}
	lab.Require(t)
	l := newInterop(t)
	const (
		hostAddr = "10.77.0.2" // K, a plain host here
		elsewise = "02:00:5e:00:99:01"
	)
	sysctl := func() string {
		out, err := l.a.Run("cat", "/proc/sys/net/ipv4/conf/eth0/arp_announce")
		if err != nil {
			t.Fatalf("reading arp_announce: %v %s", err, out)
		}
		return strings.TrimSpace(out)
	}
	before := sysctl()
	m := roletest.Start(t, l.a, "TestHelperVRRPRunner", "master", "IF=eth0", "VIP="+labVIP, "INTERVAL=100ms", "PRIO=200")
	l.waitHolder(l.a, 5*time.Second)

	// The host last heard another member announce the address; the master
	// has not talked to the host yet.
	l.run("ip", "netns", "exec", l.k.NS, "ip", "neigh", "replace", labVIP, "lladdr", elsewise, "dev", "eth0", "nud", "stale")
	l.run("ip", "netns", "exec", l.a.NS, "ip", "neigh", "flush", "dev", "eth0")
	// The echo reply goes to the MAC the host has for the address, so it
	// is lost; what counts is that the master resolved the host.
	_, _ = l.a.Run("ping", "-c", "1", "-W", "1", "-I", labVIP, hostAddr)
	if out := l.run("ip", "netns", "exec", l.a.NS, "ip", "neigh", "show", hostAddr, "dev", "eth0"); !strings.Contains(out, "lladdr") {
		t.Fatalf("the master did not resolve the host (its entry: %q): the test proves nothing", strings.TrimSpace(out))
	}
	out := l.run("ip", "netns", "exec", l.k.NS, "ip", "neigh", "show", labVIP, "dev", "eth0")
	if !strings.Contains(out, elsewise) {
		t.Fatalf("the host's entry for the virtual address moved when the master resolved the host: %q, want %s kept (the master's ARP requests must not name the virtual address as sender)", strings.TrimSpace(out), elsewise)
	}
	if got := sysctl(); got != "2" {
		t.Errorf("arp_announce on the election interface while the runner runs: %s, want 2", got)
	}
	roletest.Stop(m, syscall.SIGTERM)
	if got := sysctl(); got != before {
		t.Errorf("arp_announce after the runner stopped: %s, want %s as before", got, before)
	}
}
