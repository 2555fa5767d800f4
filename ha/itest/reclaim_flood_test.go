package itest

import (
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hagent/hagent/ha/internal/vrrp"
)

// TestReclaimFloodRateLimited: a host on the LAN floods forged
// lower-priority VRRP adverts for the group (1,000 a second for 2 s). The
// master answers a lower-priority advert with a re-announcement, but at most
// one burst per garp_lower_prio_interval (1 s): the rest are counted as
// suppressed, the LAN gets a handful of gratuitous ARPs, and the master
// stays master with the host's entry on its MAC.
func TestReclaimFloodRateLimited(t *testing.T) {
	g := newReclaimLab(t, "vrrp")
	attacker := g.l.HostT(t, "evil", "192.0.2.40/24")
	count := func(name string) uint64 { return counter(t, redundancy(t, g.agents[0]), name) }
	reclaims0, suppressed0, garps0 := count("election.reannouncements"), count("election.reannouncements_suppressed"), count("election.gratuitous_arps")

	const rate, dur = 1000, 2 * time.Second
	sent := make(chan int, 1)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		fd, err := unix.Open("/var/run/netns/"+attacker.NS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			err = unix.Setns(fd, unix.CLONE_NEWNET)
			unix.Close(fd)
		}
		var s int
		if err == nil {
			s, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, vrrp.IPProtocol)
		}
		if err == nil {
			err = unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, vrrp.TTL)
		}
		var ifi *net.Interface
		if err == nil {
			ifi, err = net.InterfaceByName("eth0") // the attacker's namespace: no route to multicast
		}
		if err == nil {
			err = unix.SetsockoptIPMreqn(s, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)})
		}
		errc <- err
		if err != nil {
			return
		}
		defer unix.Close(s)
		src := netip.MustParseAddr("192.0.2.40")
		adv := vrrp.Advertisement{VRID: 51, Priority: 1, Interval: vrrp.Centiseconds(100 * time.Millisecond)}
		if err := adv.SetAddresses([]netip.Addr{netip.MustParseAddr("192.0.2.1")}); err != nil {
			panic(err)
		}
		pkt, err := adv.AppendChecksummed(nil, src, vrrp.Group)
		if err != nil {
			panic(err)
		}
		dst := &unix.SockaddrInet4{Addr: vrrp.Group.As4()}
		n := 0
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for end := time.Now().Add(dur); time.Now().Before(end); <-tick.C {
			if unix.Sendto(s, pkt, 0, dst) == nil {
				n++
			}
		}
		sent <- n
	}()
	if err := <-errc; err != nil {
		t.Fatalf("attacker socket: %v", err)
	}
	n := <-sent
	time.Sleep(1500 * time.Millisecond) // the deferred burst at the end of the last interval
	reclaims, suppressed, garps := count("election.reannouncements")-reclaims0, count("election.reannouncements_suppressed")-suppressed0, count("election.gratuitous_arps")-garps0
	t.Logf("%d forged adverts sent: %d re-announcements, %d suppressed, %d gratuitous ARPs", n, reclaims, suppressed, garps)
	// One burst per second of flood, plus the one at its start and the
	// deferred one at the end: at most 4, 3 gratuitous ARPs each.
	if reclaims < 1 || reclaims > 4 || garps > 4*3 {
		t.Fatalf("%d re-announcements (%d gratuitous ARPs) for a 2 s flood, want 1..4 (at most 12 ARPs)", reclaims, garps)
	}
	if suppressed < uint64(n)/4 {
		t.Fatalf("%d triggers suppressed for %d forged adverts: the master did not hear the flood", suppressed, n)
	}
	if r := redundancy(t, g.agents[0]); !strings.HasPrefix(r.Role, "active") {
		t.Fatalf("member 1 is %s after the flood, want active", r.Role)
	}
	if m := neighMAC(t, g.mn); m != g.macs[0] {
		t.Fatalf("host's entry for the virtual address %q, want member 1's MAC %s", m, g.macs[0])
	}
}
