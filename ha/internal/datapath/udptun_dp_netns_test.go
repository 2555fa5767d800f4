//go:build linux

package datapath

// The UDP tunnel through the kernel Datapath (Apply, Reconcile, Withdraw),
// end to end on the host kernel, with a real NAT in front of the node:
//
//	cn (203.0.113.9) ─ cn1/cn0 ─ ha (203.0.113.1 | 192.0.2.1) ─ pub0/pub1 ─ rt (192.0.2.50 | 172.16.0.1) ─ priv0/priv1 ─ mn (172.16.0.2)
//
// rt masquerades (nftables, fully-random ports) what leaves pub1. The
// mobile node is the test: a TUN device mnt0 in mn holds the home address
// 10.1.0.5 and a pump moves packets between it and a UDP socket
// 172.16.0.2:434 ↔ 192.0.2.1:434 (tunnel data header added and
// stripped), so mn's own kernel answers pings and runs TCP. What the agent
// will do is done by hand: the NAT mapping is read off the "registration"
// arriving at ha's socket on 192.0.2.1:434, and handed to Apply.

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/hagent/hagent/ha/internal/groupio"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

type udNet struct{ ha, rt, mn, cn string }

func newUDNet(t testing.TB) udNet {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (nftables) for the NAT")
	}
	var r [3]byte
	_, _ = rand.Read(r[:])
	p := "hud" + hex.EncodeToString(r[:])
	n := udNet{ha: p + "h", rt: p + "r", mn: p + "m", cn: p + "c"}
	for _, ns := range []string{n.ha, n.rt, n.mn, n.cn} {
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
		{"ip", "-n", n.ha, "link", "add", "pub0", "type", "veth", "peer", "name", "pub1", "netns", n.rt},
		{"ip", "-n", n.ha, "link", "add", "cn0", "type", "veth", "peer", "name", "cn1", "netns", n.cn},
		{"ip", "-n", n.ha, "link", "add", "home0", "type", "veth", "peer", "name", "home1"},
		{"ip", "-n", n.ha, "link", "add", "mip0", "type", "veth", "peer", "name", "mip1"}, // stands in for the ipip device
		{"ip", "-n", n.rt, "link", "add", "priv0", "type", "veth", "peer", "name", "priv1", "netns", n.mn},
		{"ip", "-n", n.ha, "addr", "add", "192.0.2.1/24", "dev", "pub0"},
		{"ip", "-n", n.ha, "addr", "add", "203.0.113.1/24", "dev", "cn0"},
		{"ip", "-n", n.ha, "addr", "add", "10.1.0.1/24", "dev", "home0"},
		{"ip", "-n", n.rt, "addr", "add", "192.0.2.50/24", "dev", "pub1"},
		{"ip", "-n", n.rt, "addr", "add", "172.16.0.1/24", "dev", "priv0"},
		{"ip", "-n", n.mn, "addr", "add", "172.16.0.2/24", "dev", "priv1"},
		{"ip", "-n", n.cn, "addr", "add", "203.0.113.9/24", "dev", "cn1"},
	} {
		run(c...)
	}
	for ns, devs := range map[string][]string{n.ha: {"lo", "pub0", "cn0", "home0", "home1", "mip0", "mip1"},
		n.rt: {"lo", "pub1", "priv0"}, n.mn: {"lo", "priv1"}, n.cn: {"lo", "cn1"}} {
		for _, d := range devs {
			run("ip", "-n", ns, "link", "set", d, "up")
		}
	}
	for _, c := range [][]string{
		{"ip", "-n", n.cn, "route", "add", "default", "via", "203.0.113.1"},
		{"ip", "-n", n.rt, "route", "add", "default", "via", "192.0.2.1"},
		{"ip", "-n", n.mn, "route", "add", "default", "via", "172.16.0.1"},
		{"ip", "netns", "exec", n.ha, "sysctl", "-qw", "net.ipv4.ip_forward=1",
			"net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.default.rp_filter=1", "net.ipv4.conf.pub0.rp_filter=1"},
		{"ip", "netns", "exec", n.rt, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"ip", "netns", "exec", n.rt, "nft", "add table ip nat; add chain ip nat post { type nat hook postrouting priority srcnat; }; add rule ip nat post oifname pub1 masquerade fully-random"},
	} {
		run(c...)
	}
	return n
}

// openUDP opens the Datapath in ha with the UDP tunnel on pub0 and
// 192.0.2.1 (standing in for the virtual address) as the local end.
func (n udNet) openUDP(t testing.TB, set ...func(*Config)) *kernel {
	t.Helper()
	fd, err := unix.Open("/run/netns/"+n.ha, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	cfg := Config{HomeIfname: "home0", TunnelName: "mip0", Protocol: 77, ProxyARP: true, ProxyByRoute: true,
		Local: netip.MustParseAddr("192.0.2.1"), NetNS: fd, anyTunnel: true,
		UDPTunnel: true, UplinkIfname: "pub0", Capacity: 16}
	for _, f := range set {
		f(&cfg)
	}
	dp, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close() })
	k := dp.(*kernel)
	if err := k.Setup(); err != nil {
		t.Fatal(err)
	}
	if !k.Supports(UDP) {
		t.Fatal("Setup succeeded but Supports(UDP) is false")
	}
	return k
}

// mnTun is the mobile node: TUN mnt0 (home address, MTU) and its UDP
// socket, pumped both ways until the test ends.
type mnTun struct {
	tun  *os.File
	conn *net.UDPConn
	ha   *net.UDPAddr
	wg   sync.WaitGroup
}

func newMNTun(t *testing.T, n udNet, mtu int) *mnTun {
	t.Helper()
	m := &mnTun{ha: &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: mipPort}}
	if err := groupio.InNetNS("/run/netns/"+n.mn, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq("mnt0")
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF: %w", err)
		}
		m.tun = os.NewFile(uintptr(fd), "mnt0")
		m.conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(172, 16, 0, 2), Port: mipPort})
		return err
	}); err != nil {
		t.Fatalf("the mobile node's TUN and socket: %v", err)
	}
	for _, c := range [][]string{
		{"addr", "add", "10.1.0.5/32", "dev", "mnt0"},
		{"link", "set", "mnt0", "mtu", fmt.Sprint(mtu), "up"},
		// Its own MTU keeps what it sends inside the tunnel; advmss 1460
		// makes the correspondent send full-size segments, which the
		// Home Agent's route MTU must bring down (ICMP, not a black hole).
		{"route", "add", "203.0.113.0/24", "dev", "mnt0", "advmss", "1460"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", n.mn}, c...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", c, err, out)
		}
	}
	m.wg.Add(2)
	go func() { // node → Home Agent
		defer m.wg.Done()
		buf := make([]byte, 4+65536)
		copy(buf, []byte{mipTunnel, mipTunnel, 0, 0})
		for {
			k, err := m.tun.Read(buf[4:])
			if err != nil {
				return
			}
			_, _ = m.conn.WriteToUDP(buf[:4+k], m.ha)
		}
	}()
	go func() { // Home Agent → node
		defer m.wg.Done()
		buf := make([]byte, 65536)
		for {
			k, err := m.conn.Read(buf)
			if err != nil {
				return
			}
			if k > 4 && buf[0] == mipTunnel {
				_, _ = m.tun.Write(buf[4:k])
			}
		}
	}()
	t.Cleanup(func() {
		m.tun.Close()
		m.conn.Close()
		m.wg.Wait()
	})
	return m
}

// register sends a stand-in registration (type 1) from the node's socket
// and returns the NAT mapping it arrived from, as the agent will learn it.
func (m *mnTun) register(t *testing.T, reg *net.UDPConn) netip.AddrPort {
	t.Helper()
	msg := []byte{1, 0, 0, 0, 0xde, 0xad}
	if _, err := m.conn.WriteToUDP(msg, m.ha); err != nil {
		t.Fatal(err)
	}
	for {
		b, from := readWithin(t, reg, "the registration at the agent's socket")
		if bytes.Equal(b, msg) {
			return from
		}
	}
}

// ctFlush empties the conntrack table of namespace ns (conntrack -F,
// over ctnetlink: IPCTNL_MSG_CT_DELETE without a tuple).
func ctFlush(t *testing.T, ns string) {
	t.Helper()
	fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: fd})
	if err != nil {
		t.Fatalf("ctnetlink: %v", err)
	}
	defer c.Close()
	const ipctnlMsgCtDelete = 2
	_, err = c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_CTNETLINK<<8 | ipctnlMsgCtDelete), Flags: netlink.Request | netlink.Acknowledge},
		Data:   []byte{unix.AF_INET, 0, 0, 0}, // nfgenmsg
	})
	if err != nil {
		t.Fatalf("flushing conntrack in %s: %v", ns, err)
	}
}

func waitUDPCounters(t *testing.T, k *kernel, what string, ok func(s Stats) bool) Stats {
	t.Helper()
	var s Stats
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if s = k.Stats(); ok(s) {
			return s
		}
	}
	t.Fatalf("%s: counters encap %d noendpoint %d decap %d keepalive %d wrongaddr %d wrongport %d unknown %d", what,
		s.UDPEncapsulated, s.UDPNoEndpoint, s.UDPDecapsulated, s.UDPKeepalives, s.UDPWrongAddr, s.UDPWrongPort, s.UDPUnknownHome)
	return s
}

func pingFrom(ns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "ping", "-n"}, args...)...).CombinedOutput()
	return string(out), err
}

func TestNetnsUDPTunnelDatapath(t *testing.T) {
	n := newUDNet(t)
	k := n.openUDP(t)
	reg := listenIn(t, n.ha, "192.0.2.1:434")
	mn := newMNTun(t, n, 1468)
	home := netip.MustParseAddr("10.1.0.5")
	bind := func(nat netip.AddrPort) Binding {
		return Binding{Home: home, CareOf: netip.MustParseAddr("172.16.0.2"), Encap: UDP, NAT: nat}
	}

	// The node registers through the NAT; the agent binds it to the mapping.
	nat := mn.register(t, reg)
	if nat.Addr() != netip.MustParseAddr("192.0.2.50") {
		t.Fatalf("registration from %v: the NAT did not masquerade", nat)
	}
	if errs := k.Apply([]Binding{bind(nat)}, nil); errs != nil {
		t.Fatal(firstErr(errs))
	}
	out := n.ipOut(t, n.ha, "route", "show", "proto", "77")
	if !strings.Contains(out, "10.1.0.5  encap bpf xmit") || !strings.Contains(out, "dev pub0") || !strings.Contains(out, "mtu 1500") {
		t.Fatalf("the UDP binding's route:\n%s", out)
	}

	// A correspondent's ping reaches the node through the NAT, and the
	// reply comes back.
	if out, err := pingFrom(n.cn, "-c", "2", "-i", "0.2", "-W", "5", "10.1.0.5"); err != nil {
		t.Fatalf("ping through the UDP tunnel: %v\n%s", err, out)
	}
	s := waitUDPCounters(t, k, "after the ping", func(s Stats) bool { return s.UDPEncapsulated >= 2 && s.UDPDecapsulated >= 2 })

	// A keepalive (an ICMP echo request to our address inside the tunnel)
	// is counted as one, not as data forwarded, and answered: the echo
	// reply leaves encapsulated towards the NAT mapping, from our address
	// and port 434, so that it refreshes the mapping too.
	natSide := captureIn(t, n.rt, "pub1")
	ka := icmpEcho(home, netip.MustParseAddr("192.0.2.1"))
	if _, err := mn.conn.WriteToUDP(append([]byte{mipTunnel, mipTunnel, 0, 0}, ka...), mn.ha); err != nil {
		t.Fatal(err)
	}
	s = waitUDPCounters(t, k, "after a keepalive", func(x Stats) bool {
		return x.UDPKeepalives == s.UDPKeepalives+1 && x.UDPDecapsulated == s.UDPDecapsulated
	})
	reply := natSide.next(t, func(p []byte) bool {
		// UDP carrying an ICMP echo reply from our address (the capture
		// also sees the keepalive itself go by, and nothing else answers)
		return len(p) >= 32+28 && p[9] == 17 && p[32+9] == 1 && p[32+20] == 0 && bytes.Equal(p[32+12:32+16], []byte{192, 0, 2, 1})
	})
	natA := nat.Addr().As4()
	switch be := binary.BigEndian; {
	case !bytes.Equal(reply[12:16], []byte{192, 0, 2, 1}) || !bytes.Equal(reply[16:20], natA[:]):
		t.Fatalf("keepalive answer %v → %v, want 192.0.2.1 → the NAT's %v", netip.AddrFrom4([4]byte(reply[12:16])), netip.AddrFrom4([4]byte(reply[16:20])), nat.Addr())
	case be.Uint16(reply[20:]) != mipPort || be.Uint16(reply[22:]) != nat.Port():
		t.Fatalf("keepalive answer from port %d to %d, want %d to the mapping's %d", be.Uint16(reply[20:]), be.Uint16(reply[22:]), mipPort, nat.Port())
	case reply[28] != mipTunnel || reply[29] != mipTunnel:
		t.Fatalf("keepalive answer's tunnel data header % x", reply[28:32])
	case !bytes.Equal(reply[32+16:32+20], []byte{10, 1, 0, 5}) ||
		be.Uint16(reply[32+24:]) != be.Uint16(ka[24:]) || be.Uint16(reply[32+26:]) != be.Uint16(ka[26:]):
		t.Fatalf("keepalive answer's inner packet % x is not the reply to % x", reply[32:], ka)
	}
	// An echo request in the tunnel to anyone else is no keepalive: it is
	// data, decapsulated and forwarded to the correspondent.
	toCN := icmpEcho(home, netip.MustParseAddr("203.0.113.9"))
	if _, err := mn.conn.WriteToUDP(append([]byte{mipTunnel, mipTunnel, 0, 0}, toCN...), mn.ha); err != nil {
		t.Fatal(err)
	}
	s = waitUDPCounters(t, k, "after an echo request to the correspondent", func(x Stats) bool {
		return x.UDPDecapsulated == s.UDPDecapsulated+1 && x.UDPKeepalives == s.UDPKeepalives
	})

	// Tunnel data from another socket of the node (so another NAT port):
	// dropped and counted; the good one after it is the first to arrive.
	cn := listenIn(t, n.cn, "203.0.113.9:7777")
	var other *net.UDPConn
	if err := groupio.InNetNS("/run/netns/"+n.mn, func() error {
		var err error
		other, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(172, 16, 0, 2), Port: 4434})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	mnAP, cnAP := netip.MustParseAddrPort("10.1.0.5:5555"), netip.MustParseAddrPort("203.0.113.9:7777")
	_, _ = other.WriteToUDP(tunnelData(innerUDP(mnAP, cnAP, "bad-port")), mn.ha)
	s = waitUDPCounters(t, k, "after tunnel data from another port", func(x Stats) bool { return x.UDPWrongPort == s.UDPWrongPort+1 })
	_, _ = mn.conn.WriteToUDP(tunnelData(innerUDP(mnAP, cnAP, "good")), mn.ha)
	if b, _ := readWithin(t, cn, "the good datagram"); string(b) != "good" {
		t.Fatalf("correspondent got %q first, want good: tunnel data from a port not the binding's went through", b)
	}

	// A 1,500-byte ping with DF: ICMP "fragmentation needed" with the
	// tunnel's MTU, from the Home Agent, before encapsulation.
	out, _ = pingFrom(n.cn, "-c", "1", "-W", "5", "-M", "do", "-s", "1472", "10.1.0.5")
	if !strings.Contains(out, "mtu = 1468") {
		t.Fatalf("DF ping of 1500 bytes:\n%s\nwant ICMP fragmentation needed, mtu = 1468", out)
	}
	// Without DF it is fragmented before encapsulation and answered.
	if out, err := pingFrom(n.cn, "-c", "1", "-W", "5", "-M", "dont", "-s", "1472", "10.1.0.5"); err != nil {
		t.Fatalf("1500-byte ping without DF: %v\n%s", err, out)
	}

	// A TCP transfer both ways completes: the correspondent sends
	// 1460-byte segments (the node's advertised MSS) with DF, learns the
	// tunnel MTU from the ICMP answer and goes on.
	txChecksumOff(t, n.cn, "cn1")
	tcpThrough(t, n, 1<<20)

	// The NAT forgets the mapping; the node re-registers from a new port;
	// Apply moves the endpoint (no route churn) and traffic follows.
	before := n.ipOut(t, n.ha, "route", "show", "proto", "77")
	var moved netip.AddrPort
	for try := 0; ; try++ {
		ctFlush(t, n.rt)
		if moved = mn.register(t, reg); moved != nat {
			break
		}
		if try == 3 {
			t.Fatalf("the NAT kept port %d through 4 flushes", nat.Port())
		}
	}
	if errs := k.Apply([]Binding{bind(moved)}, nil); errs != nil {
		t.Fatal(firstErr(errs))
	}
	if after := n.ipOut(t, n.ha, "route", "show", "proto", "77"); after != before {
		t.Errorf("moving the endpoint changed the routes:\n%s\nthen\n%s", before, after)
	}
	if out, err := pingFrom(n.cn, "-c", "2", "-i", "0.2", "-W", "5", "10.1.0.5"); err != nil {
		t.Fatalf("ping after the NAT mapping moved %v → %v: %v\n%s", nat, moved, err, out)
	}

	// Reconcile keeps it; a stray endpoint (no binding) goes.
	stray := netip.MustParseAddr("10.1.0.77")
	if err := k.udp.tun.put(stray, Endpoint{NAT: moved, Local: netip.MustParseAddr("192.0.2.1")}); err != nil {
		t.Fatal(err)
	}
	want := []Binding{bind(moved)}
	if _, _, err := k.Reconcile(func(yield func(Binding) bool) {
		for _, b := range want {
			if !yield(b) {
				return
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	keys, err := k.udp.rd.list(k.udp.tun.endpoints)
	if err != nil || len(keys) != 1 || netip.AddrFrom4(keys[0]) != home {
		t.Fatalf("endpoints after Reconcile: %v %v, want only %v", keys, err, home)
	}
	if out, err := pingFrom(n.cn, "-c", "1", "-W", "5", "10.1.0.5"); err != nil {
		t.Fatalf("ping after Reconcile: %v\n%s", err, out)
	}

	// Withdraw (standby) takes route and endpoint away; Close the filter.
	if err := k.Withdraw(); err != nil {
		t.Fatal(err)
	}
	if out := n.ipOut(t, n.ha, "route", "show", "proto", "77"); out != "" {
		t.Fatalf("routes after Withdraw:\n%s", out)
	}
	if keys, err := k.udp.rd.list(k.udp.tun.endpoints); err != nil || len(keys) != 0 {
		t.Fatalf("endpoints after Withdraw: %v %v", keys, err)
	}

	// Takeover: Reconcile into the empty kernel puts route and endpoint
	// back, and the periodic check (scan off the owner loop) drops a stray
	// endpoint while keeping the binding's.
	seq := func(yield func(Binding) bool) {
		for _, b := range want {
			if !yield(b) {
				return
			}
		}
	}
	if added, _, err := k.Reconcile(seq); err != nil || added == 0 {
		t.Fatalf("takeover Reconcile: added %d, %v", added, err)
	}
	if out, err := pingFrom(n.cn, "-c", "1", "-W", "5", "10.1.0.5"); err != nil {
		t.Fatalf("ping after the takeover: %v\n%s", err, out)
	}
	if err := k.udp.tun.put(stray, Endpoint{NAT: moved, Local: netip.MustParseAddr("192.0.2.1")}); err != nil {
		t.Fatal(err)
	}
	sc := k.BeginScan()
	k.ScanKernel(sc)
	if _, _, err := convergeAll(k, sc, seq); err != nil {
		t.Fatal(err)
	}
	if keys, err := k.udp.rd.list(k.udp.tun.endpoints); err != nil || len(keys) != 1 || netip.AddrFrom4(keys[0]) != home {
		t.Fatalf("endpoints after the periodic check: %v %v, want only %v", keys, err, home)
	}
	if out, err := pingFrom(n.cn, "-c", "1", "-W", "5", "10.1.0.5"); err != nil {
		t.Fatalf("ping after the periodic check: %v\n%s", err, out)
	}
	if f := tcOut(t, n.ha, "filter", "show", "dev", "pub0", "ingress"); !strings.Contains(f, udpTunDecapName) {
		t.Fatalf("the decapsulating filter left before Close:\n%s", f)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if f := tcOut(t, n.ha, "filter", "show", "dev", "pub0", "ingress"); strings.Contains(f, udpTunDecapName) {
		t.Fatalf("the decapsulating filter stayed after Close:\n%s", f)
	}
}

// A UDP re-registration (the endpoint moves) allocates nothing.
func TestNetnsUDPTunnelApplyAllocatesNothing(t *testing.T) {
	n := newUDNet(t)
	k := n.openUDP(t)
	b := [2][]Binding{{{Home: netip.MustParseAddr("10.1.0.5"), CareOf: netip.MustParseAddr("172.16.0.2"), Encap: UDP,
		NAT: netip.MustParseAddrPort("192.0.2.50:40000")}}, nil}
	b[1] = []Binding{b[0][0]}
	b[1][0].NAT = netip.MustParseAddrPort("192.0.2.50:40001")
	if errs := k.Apply(b[0], nil); errs != nil {
		t.Fatal(firstErr(errs))
	}
	i := 0
	if a := testing.AllocsPerRun(200, func() {
		i++
		if errs := k.Apply(b[i%2], nil); errs != nil {
			t.Fatal(firstErr(errs))
		}
	}); a != 0 {
		t.Errorf("a UDP re-registration's Apply: %v allocations, want 0", a)
	}
	// A binding without a NAT endpoint is refused, with the home named.
	bad := b[0][0]
	bad.NAT = netip.AddrPort{}
	if errs := k.Apply([]Binding{bad}, nil); errs == nil || !strings.Contains(errs[0].Error(), "10.1.0.5") {
		t.Fatalf("a UDP binding without NAT endpoint: %v", errs)
	}
}

func (n udNet) ipOut(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
	return string(out)
}

func tcOut(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("tc", append([]string{"-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("tc %v: %v: %s", args, err, out)
	}
	return string(out)
}

// icmpEcho is an IPv4 ICMP echo request src → dst with valid checksums.
func icmpEcho(src, dst netip.Addr) []byte {
	be := binary.BigEndian
	p := make([]byte, 28)
	p[0], p[8], p[9] = 0x45, 64, 1
	be.PutUint16(p[2:], 28)
	s, d := src.As4(), dst.As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	be.PutUint16(p[10:], ^sum16(p[:20]))
	p[20] = 8
	be.PutUint16(p[24:], 0x4d49)
	be.PutUint16(p[26:], 1)
	be.PutUint16(p[22:], ^sum16(p[20:]))
	return p
}

func sum16(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// txChecksumOff turns transmit checksum offload off on dev in ns
// (ethtool -K dev tx off, as SIOCETHTOOL ETHTOOL_STXCSUM). Over veth a
// sender's TCP segment keeps CHECKSUM_PARTIAL into the next namespace, and
// once the encap program has wrapped it in UDP nothing ever fills the
// inner checksum in (no NIC does): the node's stack would drop it. A
// forwarding Home Agent receives finished checksums from real NICs.
func txChecksumOff(t *testing.T, ns, dev string) {
	t.Helper()
	if err := groupio.InNetNS("/run/netns/"+ns, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		const ethtoolSTXCSUM = 0x17
		val := struct{ cmd, data uint32 }{ethtoolSTXCSUM, 0}
		var ifr [40]byte
		copy(ifr[:unix.IFNAMSIZ-1], dev)
		*(*uintptr)(unsafe.Pointer(&ifr[unix.IFNAMSIZ])) = uintptr(unsafe.Pointer(&val))
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr[0]))); e != 0 {
			return e
		}
		return nil
	}); err != nil {
		t.Fatalf("turning tx checksum offload off on %s: %v", dev, err)
	}
}

// tcpThrough sends size bytes from the correspondent to a server on the
// node's home address, which echoes them back.
func tcpThrough(t *testing.T, n udNet, size int) {
	t.Helper()
	var ln net.Listener
	if err := groupio.InNetNS("/run/netns/"+n.mn, func() error {
		var err error
		ln, err = net.Listen("tcp4", "10.1.0.5:8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(60 * time.Second)) // bounds a failure only
		_, _ = io.Copy(c, c)
	}()
	var c net.Conn
	if err := groupio.InNetNS("/run/netns/"+n.cn, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", "10.1.0.5:8080", 10*time.Second)
		return err
	}); err != nil {
		t.Fatalf("TCP connect through the tunnel: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	data := make([]byte, size)
	_, _ = rand.Read(data)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("TCP through the tunnel: read %d of %d bytes: %v", len(got), size, err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("TCP through the tunnel: write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("TCP through the tunnel: %d bytes back of %d, or different", len(got), size)
	}
}

// With the clamp, the node's SYN-ACK (MSS 1460: its route's advmss) leaves
// the tunnel with 1428, and the correspondent's SYN (1460) enters it with
// 1428: the correspondent's first segments already fit, no ICMP needed.
func TestNetnsUDPTunnelMSSClamp(t *testing.T) {
	n := newUDNet(t)
	k := n.openUDP(t, func(c *Config) { c.TCPMSSClamp = true })
	reg := listenIn(t, n.ha, "192.0.2.1:434")
	mn := newMNTun(t, n, 1500)
	nat := mn.register(t, reg)
	if errs := k.Apply([]Binding{{Home: netip.MustParseAddr("10.1.0.5"), CareOf: netip.MustParseAddr("172.16.0.2"), Encap: UDP, NAT: nat}}, nil); errs != nil {
		t.Fatal(firstErr(errs))
	}
	// Both ends' veths compute their checksums: a CHECKSUM_PARTIAL skb
	// reaching the clamp keeps its old TCP checksum (l4_csum_replace
	// leaves a partial one alone) and the correspondent, seeing it no
	// longer partial, drops it. Real uplinks deliver finished checksums.
	txChecksumOff(t, n.cn, "cn1")
	txChecksumOff(t, n.mn, "priv1")
	var ln net.Listener
	if err := groupio.InNetNS("/run/netns/"+n.mn, func() error {
		var err error
		ln, err = net.Listen("tcp4", "10.1.0.5:8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			acc <- c
		}
	}()
	var c net.Conn
	if err := groupio.InNetNS("/run/netns/"+n.cn, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", "10.1.0.5:8080", 10*time.Second)
		return err
	}); err != nil {
		t.Fatalf("TCP connect through the tunnel: %v (counters %+v)", err, k.Stats())
	}
	defer c.Close()
	var sc net.Conn
	select {
	case sc = <-acc:
		defer sc.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the node accepted nothing")
	}
	for what, conn := range map[string]net.Conn{"correspondent": c, "node": sc} {
		rc, _ := conn.(*net.TCPConn).SyscallConn()
		var mss int
		var gerr error
		_ = rc.Control(func(fd uintptr) { mss, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG) })
		if gerr != nil || mss > 1428 {
			t.Errorf("%s's MSS %d (%v), want ≤ 1428 (tunnel MTU 1468 − 40)", what, mss, gerr)
		}
	}
	waitUDPCounters(t, k, "after the handshake", func(s Stats) bool { return s.UDPMSSClamped == 2 })
}
