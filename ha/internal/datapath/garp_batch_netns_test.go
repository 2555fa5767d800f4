//go:build linux

package datapath

import (
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// inNetns runs f on a thread switched into n (sockets made there stay
// in n), then switches back.
func inNetns(t *testing.T, n *netns, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(self)
	if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
			panic("cannot switch the thread back to its namespace: " + err.Error())
		}
	}()
	f()
}

// TestNetnsAnnouncerBatches: the gratuitous ARP of 1,000 registrations
// leaves in 16 sendmmsg(2) calls (64 frames each) from one socket, every
// frame on the wire announcing its address, and a batch's announcement
// allocates nothing (a socket opened per batch read every link each time).
func TestNetnsAnnouncerBatches(t *testing.T) {
	n := newNetns(t)
	const total = 1000
	addrs := make([]netip.Addr, total)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{10, 0, byte(1 + i>>8), byte(i)})
	}
	a := NewAnnouncer("home0")
	defer a.Close()
	var rx int
	var err error
	inNetns(t, n, func() {
		rx, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return
		}
		var peer *net.Interface
		if peer, err = net.InterfaceByName("home1"); err != nil {
			return
		}
		if err = unix.SetsockoptInt(rx, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20); err != nil {
			return
		}
		if err = unix.Bind(rx, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: peer.Index}); err != nil {
			return
		}
		err = a.Announce(addrs) // opens the socket in n
	})
	if rx > 0 {
		defer unix.Close(rx)
	}
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64((total + announceBatch - 1) / announceBatch); a.Calls != want || a.Frames != total {
		t.Errorf("%d announcements: %d sendmmsg calls, %d frames; want %d calls, %d frames", total, a.Calls, a.Frames, want, total)
	}
	seen := map[netip.Addr]bool{}
	buf := make([]byte, 128)
	_ = unix.SetsockoptTimeval(rx, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
	for len(seen) < total {
		m, _, err := unix.Recvfrom(rx, buf, 0)
		if err != nil {
			t.Fatalf("after %d of %d announcements: %v", len(seen), total, err)
		}
		f := buf[:m]
		// Ethernet broadcast, ARP request, sender = target = the address.
		if m < 42 || binary.BigEndian.Uint16(f[12:]) != unix.ETH_P_ARP || f[0] != 0xff || binary.BigEndian.Uint16(f[20:]) != 1 {
			continue
		}
		spa, tpa := netip.AddrFrom4([4]byte(f[28:32])), netip.AddrFrom4([4]byte(f[38:42]))
		if spa != tpa {
			t.Fatalf("announcement with sender %v, target %v", spa, tpa)
		}
		seen[spa] = true
	}
	for _, ip := range addrs {
		if !seen[ip] {
			t.Fatalf("%v was not announced", ip)
		}
	}

	batch := addrs[:64]
	if allocs := testing.AllocsPerRun(100, func() {
		if err := a.Announce(batch); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("announcing a batch of %d: %v allocations, want 0", len(batch), allocs)
	}

	// The interface goes away and comes back: the failed send closes the
	// socket, the next Announce finds the new interface.
	n.ip(t, "link", "del", "home0")
	if err := a.Announce(batch[:1]); err == nil {
		t.Fatal("announcing on a deleted interface: no error")
	}
	n.ip(t, "link", "add", "home0", "type", "veth", "peer", "name", "home1")
	n.ip(t, "link", "set", "home0", "up")
	n.ip(t, "link", "set", "home1", "up")
	inNetns(t, n, func() { err = a.Announce(batch[:1]) })
	if err != nil {
		t.Fatalf("announcing on the recreated interface: %v", err)
	}
}
