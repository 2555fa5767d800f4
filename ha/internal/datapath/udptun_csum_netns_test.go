package datapath

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/hagent/hagent/ha/internal/groupio"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Tunnel data whose outer UDP checksum the sender left to offload arrives
// CHECKSUM_PARTIAL (over veth here; from a virtio NIC in a VM, which is
// where it was found: the forwarded packet was refused by the host's tap).
// After the decapsulation the stale partial state must be gone: the
// correspondent's link has transmit checksum offload off, so a packet
// still "partial" there gets a checksum computed in software at
// csum_start + csum_offset, which after a 32-byte strip at the MAC layer
// lands in the Ethernet source address. The test fails so with the old
// strip (utStrip(-1)): the source MAC arrives changed.
func TestNetnsUDPTunnelPartialChecksum(t *testing.T) {
	for _, tc := range []struct {
		name    string
		base    int32
		corrupt bool
	}{{"strip past csum_start", 14, false}, {"plain strip", -1, true}} {
		t.Run(tc.name, func(t *testing.T) {
			n := newUTNet(t)
			u, err := newUDPTun(16, 0, tc.base)
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
			txChecksumOff(t, n.ha, "cn0")
			cn0, err := k.getLink("cn0")
			if err != nil {
				t.Fatal(err)
			}
			var cn0MAC net.HardwareAddr
			if err := groupio.InNetNS("/run/netns/"+n.ha, func() error {
				ifi, err := net.InterfaceByIndex(int(cn0.Index))
				if err == nil {
					cn0MAC = ifi.HardwareAddr
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			capt := captureIn(t, n.cn, "cn1")
			nat := listenIn(t, n.nat, natEP.String()) // a UDP socket: its checksum is offloaded on veth
			agent := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 434}
			inner := innerUDP(netip.MustParseAddrPort("10.1.0.5:9999"), netip.MustParseAddrPort("203.0.113.9:7777"), "partial")
			if _, err := nat.WriteToUDP(tunnelData(inner), agent); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 2048)
			for {
				m, from, err := unix.Recvfrom(capt.fd, buf, 0)
				if err != nil {
					got, _ := u.counters()
					t.Fatalf("the decapsulated packet at the correspondent: %v (counters %v)", err, got)
				}
				if m < 20 || !bytes.Equal(buf[16:20], []byte{203, 0, 113, 9}) || buf[9] != 17 {
					continue
				}
				src := net.HardwareAddr(from.(*unix.SockaddrLinklayer).Addr[:6])
				if corrupt := !bytes.Equal(src, cn0MAC); corrupt != tc.corrupt {
					t.Fatalf("source MAC %s, the Home Agent's is %s (corruption expected: %v)", src, cn0MAC, tc.corrupt)
				}
				t.Logf("source MAC %s (the Home Agent's %s)", src, cn0MAC)
				return
			}
		})
	}
}
