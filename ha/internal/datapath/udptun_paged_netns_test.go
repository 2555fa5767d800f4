package datapath

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Full-size tunnel data whose payload sits in pages rather than in the
// skb's linear part, as virtio-net's mergeable receive buffers hand it
// over in a VM (where it was found: TCP from the node stalled, every
// full-size tunnel data packet passing to the agent's socket). Here the
// NAT's socket sends the datagram with sendfile, which attaches the file's
// pages to the skb and leaves only the headers linear, and the veth
// carries the skb over as it is. The program must still decapsulate it:
// with its headers read by bpf_skb_load_bytes_relative (the linear part
// only) the packet was passed untouched and uncounted, and the test
// failed with no packet at the correspondent. Both ways of reading are
// tried: at the Ethernet header's known length, and, for a link-layer
// header of unknown length, after pulling the first bytes linear.
func TestNetnsUDPTunnelPagedData(t *testing.T) {
	for _, tc := range []struct {
		name string
		base int32
	}{{"link header known", 14}, {"link header unknown", -1}} {
		t.Run(tc.name, func(t *testing.T) { pagedData(t, tc.base) })
	}
}

func pagedData(t *testing.T, base int32) {
	n := newUTNet(t)
	u, err := newUDPTun(16, 0, base)
	if err != nil {
		t.Fatal(err)
	}
	defer u.close()
	fd, err := unix.Open("/run/netns/"+n.ha, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: fd})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	k := newKernel(Config{}, c)
	pub, err := k.getLink("pub0")
	if err != nil || pub.Index == 0 {
		t.Fatalf("pub0: %v %+v", err, pub)
	}
	if _, err := k.exec(unix.RTM_NEWQDISC, netlink.Acknowledge|netlink.Create|netlink.Excl, appendQdiscClsact(nil, pub.Index)); err != nil {
		t.Fatal(err)
	}
	if _, err := k.exec(unix.RTM_NEWTFILTER, netlink.Acknowledge|netlink.Create|netlink.Replace, appendFilterUDPTun(nil, pub.Index, u.decap)); err != nil {
		t.Fatal(err)
	}
	home := netip.MustParseAddr("10.1.0.5")
	if _, err := k.exec(unix.RTM_NEWROUTE, netlink.Acknowledge|netlink.Create|netlink.Replace,
		appendRouteUDPTun(nil, home, pub.Index, 1000, 77, u.encap, 0)); err != nil {
		t.Fatal(err)
	}
	natEP := netip.MustParseAddrPort("192.0.2.50:40000")
	if err := u.put(home, Endpoint{NAT: natEP, Local: netip.MustParseAddr("192.0.2.1")}); err != nil {
		t.Fatal(err)
	}
	capt := captureIn(t, n.cn, "cn1")
	nat := listenIn(t, n.nat, natEP.String())

	// 1,400 bytes of payload: the tunnel data message is 1,432 bytes.
	cn := netip.MustParseAddrPort("203.0.113.9:7777")
	msg := tunnelData(innerUDP(netip.AddrPortFrom(home, 9999), cn, strings.Repeat("paged ", 233)+"xx"))
	file, err := unix.MemfdCreate("tunnel-data", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(file)
	if _, err := unix.Write(file, msg); err != nil {
		t.Fatal(err)
	}
	raw, err := nat.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	var sent int
	if err := raw.Control(func(s uintptr) {
		if serr = unix.Connect(int(s), &unix.SockaddrInet4{Port: 434, Addr: [4]byte{192, 0, 2, 1}}); serr != nil {
			return
		}
		var off int64
		sent, serr = unix.Sendfile(int(s), file, &off, len(msg))
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil || sent != len(msg) {
		t.Fatalf("sendfile of %d bytes to the agent: sent %d, %v", len(msg), sent, serr)
	}

	got := capt.next(t, func(p []byte) bool {
		return len(p) >= 20 && net.IP(p[16:20]).Equal(net.IP(cn.Addr().AsSlice())) && p[9] == 17
	})
	if len(got) != len(msg)-4 {
		t.Fatalf("the inner packet at the correspondent: %d bytes, want %d", len(got), len(msg)-4)
	}
	cnt, err := u.counters()
	if err != nil {
		t.Fatal(err)
	}
	if cnt[utDecapPassed] != 1 {
		t.Fatalf("decapsulated %d, want 1 (counters %v)", cnt[utDecapPassed], cnt)
	}
	t.Logf("a %d-byte tunnel data message sent with sendfile: decapsulated, %d bytes at the correspondent", len(msg), len(got))
}
