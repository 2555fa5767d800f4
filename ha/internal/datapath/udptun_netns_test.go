//go:build linux

package datapath

// UDP tunnelling on the host kernel, end to end through three namespaces:
//
//	cn (203.0.113.9) ── cn0/cn1 ── ha (203.0.113.1 | 192.0.2.1) ── pub0/pub1 ── nat (192.0.2.50, .51)
//
// "nat" stands for the NAT in front of a mobile node: the node's tunnel
// endpoint is the NAT's public address and mapped port (192.0.2.50:40000).
// The home address 10.1.0.5 is routed in ha through the LWT program; the
// tc program sits on ha's pub0 ingress. rp_filter is strict, as on a
// router: a decapsulated packet's source (the home address) routes back
// through pub0, the device it arrived on, so it passes.

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/groupio"
	"github.com/hagent/hagent/ha/mip"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// utNet is the three namespaces.
type utNet struct{ ha, nat, cn string }

func newUTNet(t *testing.T) utNet {
	t.Helper()
	requireRoot(t)
	var r [3]byte
	_, _ = rand.Read(r[:])
	p := "hut" + hex.EncodeToString(r[:])
	n := utNet{ha: p + "h", nat: p + "n", cn: p + "c"}
	for _, ns := range []string{n.ha, n.nat, n.cn} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	for _, c := range [][]string{
		{"ip", "-n", n.ha, "link", "add", "pub0", "type", "veth", "peer", "name", "pub1", "netns", n.nat},
		{"ip", "-n", n.ha, "link", "add", "cn0", "type", "veth", "peer", "name", "cn1", "netns", n.cn},
		{"ip", "-n", n.ha, "addr", "add", "192.0.2.1/24", "dev", "pub0"},
		{"ip", "-n", n.ha, "addr", "add", "203.0.113.1/24", "dev", "cn0"},
		{"ip", "-n", n.nat, "addr", "add", "192.0.2.50/24", "dev", "pub1"},
		{"ip", "-n", n.nat, "addr", "add", "192.0.2.51/24", "dev", "pub1"},
		{"ip", "-n", n.cn, "addr", "add", "203.0.113.9/24", "dev", "cn1"},
		{"ip", "-n", n.ha, "link", "set", "lo", "up"}, {"ip", "-n", n.nat, "link", "set", "lo", "up"},
		{"ip", "-n", n.cn, "link", "set", "lo", "up"},
		{"ip", "-n", n.ha, "link", "set", "pub0", "up"}, {"ip", "-n", n.ha, "link", "set", "cn0", "up"},
		{"ip", "-n", n.nat, "link", "set", "pub1", "up"}, {"ip", "-n", n.cn, "link", "set", "cn1", "up"},
		{"ip", "-n", n.cn, "route", "add", "default", "via", "203.0.113.1"},
		{"ip", "-n", n.nat, "route", "add", "default", "via", "192.0.2.1"},
		{"ip", "netns", "exec", n.ha, "sysctl", "-qw", "net.ipv4.ip_forward=1",
			"net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.default.rp_filter=1", "net.ipv4.conf.pub0.rp_filter=1"},
	} {
		run(c...)
	}
	return n
}

// listen opens a UDP socket on addr in namespace ns.
func listenIn(t *testing.T, ns, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := groupio.InNetNS("/run/netns/"+ns, func() error {
		var err error
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// innerUDP is an IPv4/UDP packet with a valid header checksum and UDP
// checksum 0.
func innerUDP(src, dst netip.AddrPort, payload string) []byte {
	be := binary.BigEndian
	p := make([]byte, 28, 28+len(payload))
	p[0], p[8], p[9] = 0x45, 64, 17
	be.PutUint16(p[2:], uint16(28+len(payload)))
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(be.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	be.PutUint16(p[10:], ^uint16(sum))
	be.PutUint16(p[20:], src.Port())
	be.PutUint16(p[22:], dst.Port())
	be.PutUint16(p[24:], uint16(8+len(payload)))
	return append(p, payload...)
}

func tunnelData(inner []byte) []byte {
	b, _ := mip.TunnelHeader{NextHeader: mip.NextIPv4}.AppendBinary(nil)
	return append(b, inner...)
}

func readWithin(t *testing.T, c *net.UDPConn, what string) ([]byte, netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 2048)
	// A deadline that only bounds a failure: a datagram that comes arrives
	// in microseconds.
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return buf[:n], from
}

func TestNetnsUDPTunnel(t *testing.T) {
	n := newUTNet(t)
	u, err := newUDPTun(16, 0, 14)
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
	k := newKernel(Config{}, c)
	defer c.Close()
	pub, err := k.getLink("pub0")
	if err != nil || pub.Index == 0 {
		t.Fatalf("pub0: %v %+v", err, pub)
	}
	if _, err := k.exec(unix.RTM_NEWQDISC, netlink.Acknowledge|netlink.Create|netlink.Excl, appendQdiscClsact(nil, pub.Index)); err != nil {
		t.Fatal(err)
	}
	if _, err := k.exec(unix.RTM_NEWTFILTER, netlink.Acknowledge|netlink.Create|netlink.Replace, appendFilterUDPTun(nil, pub.Index, u.decap)); err != nil {
		t.Fatalf("attaching the decapsulating filter: %v", err)
	}
	home := netip.MustParseAddr("10.1.0.5")
	if _, err := k.exec(unix.RTM_NEWROUTE, netlink.Acknowledge|netlink.Create|netlink.Replace,
		appendRouteUDPTun(nil, home, pub.Index, 1000, 77, u.encap, 0)); err != nil {
		t.Fatalf("adding the encap bpf route: %v", err)
	}
	natEP := netip.MustParseAddrPort("192.0.2.50:40000")
	if err := u.put(home, Endpoint{NAT: natEP, Local: netip.MustParseAddr("192.0.2.1")}); err != nil {
		t.Fatal(err)
	}

	capture := captureIn(t, n.nat, "pub1")
	nat := listenIn(t, n.nat, natEP.String())
	natOtherPort := listenIn(t, n.nat, "192.0.2.50:40001")
	natOtherAddr := listenIn(t, n.nat, "192.0.2.51:40000")
	cn := listenIn(t, n.cn, "203.0.113.9:7777")
	reg := listenIn(t, n.ha, "192.0.2.1:434")
	agent := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: mip.Port}

	var want [utSlots]uint64
	counters := func(what string) {
		t.Helper()
		got, err := u.counters()
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("%s: counters %v, want %v (sent nobinding pushfail passed wrongaddr wrongport unknown nexthdr adjustfail)", what, got, want)
		}
	}

	// Correspondent → home address: leaves encapsulated to the NAT, from
	// our address and port 434.
	if _, err := cn.WriteToUDP([]byte("to-mn"), &net.UDPAddr{IP: net.IPv4(10, 1, 0, 5), Port: 9999}); err != nil {
		t.Fatal(err)
	}
	b, from := readWithin(t, nat, "the encapsulated packet at the NAT")
	if from != netip.MustParseAddrPort("192.0.2.1:434") {
		t.Errorf("tunnel data from %v, want 192.0.2.1:434", from)
	}
	var th mip.TunnelHeader
	if err := th.UnmarshalBinary(b); err != nil || th.NextHeader != mip.NextIPv4 {
		t.Fatalf("tunnel header %x: %v", b, err)
	}
	inner := b[mip.TunnelHeaderLen:]
	if len(inner) < 28 || inner[0] != 0x45 || inner[9] != 17 ||
		netip.AddrFrom4([4]byte(inner[12:16])).String() != "203.0.113.9" ||
		netip.AddrFrom4([4]byte(inner[16:20])) != home || string(inner[28:]) != "to-mn" {
		t.Fatalf("inner packet % x", inner)
	}
	want[utEncapSent]++
	counters("after the correspondent's packet")
	checkOuter(t, capture.next(t, func(p []byte) bool { return len(p) > 28 && p[9] == 17 && p[20] == 0x01 && p[21] == 0xb2 }))

	// Tunnel data from the binding's NAT mapping: stripped and forwarded.
	mn := netip.MustParseAddrPort("10.1.0.5:5555")
	cnAP := netip.MustParseAddrPort("203.0.113.9:7777")
	if _, err := nat.WriteToUDP(tunnelData(innerUDP(mn, cnAP, "from-mn")), agent); err != nil {
		t.Fatal(err)
	}
	b, from = readWithin(t, cn, "the decapsulated packet at the correspondent")
	if string(b) != "from-mn" || from != mn {
		t.Fatalf("correspondent got %q from %v", b, from)
	}
	want[utDecapPassed]++
	counters("after good tunnel data")

	// From another port (a stale mapping) and another address: dropped and
	// counted; the next good one is the correspondent's next datagram.
	_, _ = natOtherPort.WriteToUDP(tunnelData(innerUDP(mn, cnAP, "bad-port")), agent)
	_, _ = natOtherAddr.WriteToUDP(tunnelData(innerUDP(mn, cnAP, "bad-addr")), agent)
	_, _ = nat.WriteToUDP(tunnelData(innerUDP(netip.MustParseAddrPort("10.1.0.99:5555"), cnAP, "unknown-home")), agent)
	_, _ = nat.WriteToUDP(tunnelData(innerUDP(mn, cnAP, "good-2")), agent)
	if b, _ = readWithin(t, cn, "the second good packet"); string(b) != "good-2" {
		t.Fatalf("correspondent got %q, want good-2: a wrong-source packet went through", b)
	}
	want[utDecapWrongPort]++
	want[utDecapWrongAddr]++
	want[utDecapUnknown]++
	want[utDecapPassed]++
	counters("after wrong sources")

	// A registration request on the same port reaches the agent's socket,
	// from any port, uncounted; none of the tunnel data above did.
	req := mip.Request{Lifetime: 600, HomeAddr: home, HomeAgent: netip.MustParseAddr("192.0.2.1"),
		CareOf: netip.MustParseAddr("172.16.0.2"), ID: 1}
	rb, _ := req.AppendBinary(nil)
	rb = mip.AppendUDPTunnelRequest(rb, mip.UDPTunnelRequest{Encapsulation: mip.NextIPv4})
	if _, err := natOtherPort.WriteToUDP(rb, agent); err != nil {
		t.Fatal(err)
	}
	b, from = readWithin(t, reg, "the registration at the agent's socket")
	if b[0] != mip.TypeRequest || from != netip.MustParseAddrPort("192.0.2.50:40001") {
		t.Fatalf("agent socket got %x from %v", b, from)
	}
	counters("after a registration")

	// A new NAT mapping moves the tunnel: port 40001 is now the binding's.
	if err := u.put(home, Endpoint{NAT: netip.MustParseAddrPort("192.0.2.50:40001"), Local: netip.MustParseAddr("192.0.2.1")}); err != nil {
		t.Fatal(err)
	}
	_, _ = cn.WriteToUDP([]byte("to-new-port"), &net.UDPAddr{IP: net.IPv4(10, 1, 0, 5), Port: 9999})
	if b, _ = readWithin(t, natOtherPort, "tunnel data at the new mapping"); string(b[mip.TunnelHeaderLen+28:]) != "to-new-port" {
		t.Fatalf("new mapping got % x", b)
	}
	_, _ = nat.WriteToUDP(tunnelData(innerUDP(mn, cnAP, "old-port")), agent)
	_, _ = natOtherPort.WriteToUDP(tunnelData(innerUDP(mn, cnAP, "new-port")), agent)
	if b, _ = readWithin(t, cn, "data from the new mapping"); string(b) != "new-port" {
		t.Fatalf("correspondent got %q, want new-port", b)
	}
	want[utEncapSent]++
	want[utDecapWrongPort]++
	want[utDecapPassed]++
	counters("after the mapping moved")

	// No endpoint: routed to the program, dropped and counted.
	if err := u.del(home); err != nil {
		t.Fatal(err)
	}
	_, _ = cn.WriteToUDP([]byte("nobody"), &net.UDPAddr{IP: net.IPv4(10, 1, 0, 5), Port: 9999})
	want[utEncapNoBinding]++
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got, _ := u.counters()
		if got == want || time.Now().After(end) {
			break
		}
	}
	counters("after the endpoint went")
}

// capture is an AF_PACKET socket on one device of a namespace: it sees
// the frames exactly as they crossed the wire, outer headers included.
type capture struct{ fd int }

func captureIn(t *testing.T, ns, dev string) *capture {
	t.Helper()
	c := &capture{fd: -1}
	if err := groupio.InNetNS("/run/netns/"+ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
		if err != nil {
			return err
		}
		c.fd = fd
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index})
	}); err != nil {
		t.Fatalf("capture on %s: %v", dev, err)
	}
	t.Cleanup(func() { unix.Close(c.fd) })
	// Bounds a failure only, like readWithin.
	_ = unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10})
	return c
}

// next returns the next IPv4 packet that match accepts.
func (c *capture) next(t *testing.T, match func([]byte) bool) []byte {
	t.Helper()
	buf := make([]byte, 2048)
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			t.Fatalf("capture: %v", err)
		}
		if match(buf[:n]) {
			return append([]byte(nil), buf[:n]...)
		}
	}
}

// checkOuter checks the headers the encap program wrote, byte by byte and
// through tshark when it is there.
func checkOuter(t *testing.T, p []byte) {
	t.Helper()
	be := binary.BigEndian
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(be.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	switch {
	case p[0] != 0x45 || int(be.Uint16(p[2:])) != len(p):
		t.Errorf("outer IPv4 header % x: version/length wrong for a %d-byte packet", p[:20], len(p))
	case sum != 0xffff:
		t.Errorf("outer IPv4 header checksum does not verify: % x", p[:20])
	case be.Uint16(p[6:])&0x4000 != 0 || p[8] != 64:
		t.Errorf("outer DF set or TTL %d: % x", p[8], p[:20])
	case int(be.Uint16(p[24:])) != len(p)-20 || be.Uint16(p[26:]) != 0 || be.Uint16(p[22:]) != 40000:
		t.Errorf("outer UDP header % x", p[20:28])
	}
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Log("tshark missing: outer headers checked by hand only")
		return
	}
	f := make([]byte, 24, 24+16+len(p))
	be.PutUint32(f[0:], 0xa1b2c3d4)
	be.PutUint16(f[4:], 2)
	be.PutUint16(f[6:], 4)
	be.PutUint32(f[16:], 65535)
	be.PutUint32(f[20:], 101) // LINKTYPE_RAW
	rec := make([]byte, 16)
	be.PutUint32(rec[8:], uint32(len(p)))
	be.PutUint32(rec[12:], uint32(len(p)))
	f = append(append(f, rec...), p...)
	name := filepath.Join(t.TempDir(), "udptun.pcap")
	if err := os.WriteFile(name, f, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-n", "-r", name, "-o", "ip.check_checksum:TRUE", "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, fl := range []string{"ip.src", "ip.dst", "ip.checksum.status", "udp.srcport", "udp.dstport", "mip.type", "mip.nattt.nexthdr", "_ws.malformed"} {
		args = append(args, "-e", fl)
	}
	out, err := exec.Command(tshark, args...).Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	got := strings.TrimSpace(string(out))
	if want := "192.0.2.1,203.0.113.9|192.0.2.50,10.1.0.5|1,1|434,7777|40000,9999|4|4|"; got != want {
		t.Errorf("tshark reads the encapsulated packet as\n%s\nwant\n%s", got, want)
	}
}
