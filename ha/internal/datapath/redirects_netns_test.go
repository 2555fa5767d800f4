//go:build linux

package datapath

// A one-armed Home Agent: the RFC 3519 UDP tunnel leaves through the home
// link itself (the uplink is the home interface), so the kernel forwards
// a correspondent's packet for the node out of the interface it came in
// on, and a node's reverse-tunnelled packet for the correspondent too:
//
//	cn (10.1.0.9) ─┐
//	ha (10.1.0.1, 198.51.100.1) ─ br0 (the lab's LAN)
//	mn (198.51.100.7) ─┘         the node's NAT endpoint, 434
//
// The kernel answers such a packet with an ICMP redirect to its source
// unless send_redirects is off both namespace-wide and on the interface.
// A redirect tells the correspondent to bypass the Home Agent, which is
// the node's router while it is away, and reaches the node through its
// own tunnel.

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/hagent/hagent/tools/lab"
	"golang.org/x/sys/unix"
)

type oneArmed struct {
	ha, cn, mn *lab.Host
	k          *kernel
}

var (
	oaHome = netip.MustParseAddrPort("10.1.0.5:9")
	oaCN   = netip.MustParseAddrPort("10.1.0.9:9")
	oaNAT  = netip.MustParseAddrPort("198.51.100.7:434")
	oaHA   = netip.MustParseAddrPort("10.1.0.1:434")
)

func newOneArmed(t *testing.T, set func(*Config)) oneArmed {
	t.Helper()
	l := lab.NewT(t)
	n := oneArmed{
		ha: l.HostT(t, "ha", "10.1.0.1/24", "198.51.100.1/24"),
		cn: l.HostT(t, "cn", "10.1.0.9/24"),
		mn: l.HostT(t, "mn", "198.51.100.7/24"),
	}
	ip := func(h *lab.Host, args ...string) {
		t.Helper()
		if err := h.IP(args...); err != nil {
			t.Fatal(err)
		}
	}
	// The "IP-in-IP device" is a veth here (the build machines' kernel has
	// no ipip), adopted through anyTunnel as in the other netns tests.
	ip(n.ha, "link", "add", "mip0", "type", "veth", "peer", "name", "mip1")
	ip(n.ha, "link", "set", "mip0", "up")
	ip(n.ha, "link", "set", "mip1", "up")
	// The agent answers no ARP for an address it routes out of the
	// interface asked on (docs/datapath.md), so the correspondent routes
	// the home address through it, like a host given the agent as router.
	ip(n.cn, "route", "add", oaHome.Addr().String()+"/32", "via", "10.1.0.1")
	// Whatever it hears, the correspondent keeps sending through the
	// agent, so that every datagram puts the agent to the test.
	if out, err := n.cn.Run("sysctl", "-qw", "net.ipv4.conf.all.accept_redirects=0", "net.ipv4.conf.eth0.accept_redirects=0"); err != nil {
		t.Fatalf("sysctl: %v: %s", err, out)
	}
	ip(n.mn, "route", "add", "default", "via", "198.51.100.1")

	fd, err := unix.Open("/run/netns/"+n.ha.NS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	cfg := Config{HomeIfname: "eth0", TunnelName: "mip0", Protocol: 77, ProxyARP: true,
		Local: oaHA.Addr(), NetNS: fd, anyTunnel: true, UDPTunnel: true, Capacity: 16}
	if set != nil {
		set(&cfg)
	}
	dp, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close() })
	n.k = dp.(*kernel)
	if err := n.k.Setup(); err != nil {
		t.Fatal(err)
	}
	if errs := n.k.Apply([]Binding{{Home: oaHome.Addr(), CareOf: oaNAT.Addr(), Encap: UDP, NAT: oaNAT}}, nil); errs != nil {
		t.Fatal(errs)
	}
	return n
}

// redirects sends 3 datagrams each way through the agent and counts the
// ICMP redirects (type 5) the correspondent hears and those the agent
// tunnels to the node. A marker that takes the same path after the
// datagrams ends each count, so no wait is involved: the kernel sends a
// redirect before it forwards the packet that drew it.
func (n oneArmed) redirects(t *testing.T) (toCN, toMN int) {
	t.Helper()
	node := listenIn(t, n.mn.NS, oaNAT.String())
	corr := listenIn(t, n.cn.NS, oaCN.String())
	capCN := captureIn(t, n.cn.NS, "eth0")

	// Correspondent → node: forwarded into the UDP tunnel out of eth0.
	for range 3 {
		if _, err := corr.WriteToUDPAddrPort([]byte("fwd"), oaHome); err != nil {
			t.Fatal(err)
		}
		b, _ := readWithin(t, node, "the correspondent's datagram tunnelled to the node")
		if in := b[4:]; len(b) < 4+28 || netip.AddrFrom4([4]byte(in[16:20])) != oaHome.Addr() || string(in[28:]) != "fwd" {
			t.Fatalf("the node got %x, want tunnel data holding the datagram for %v", b, oaHome)
		}
	}
	if out, err := pingFrom(n.cn.NS, "-c", "1", "-W", "10", "10.1.0.1"); err != nil {
		t.Fatalf("marker ping: %v: %s", err, out)
	}
	agent := oaHA.Addr().As4()
	for {
		p := capCN.next(t, func(p []byte) bool {
			return len(p) >= 28 && p[9] == 1 && [4]byte(p[12:16]) == agent
		})
		ihl := int(p[0]&0xf) * 4
		if p[ihl] == 0 { // the marker's echo reply
			break
		}
		if p[ihl] == 5 {
			toCN++
			t.Logf("redirect to the correspondent: code %d, gateway %v", p[ihl+1], netip.AddrFrom4([4]byte(p[ihl+4:ihl+8])))
		}
	}

	// Node → correspondent: decapsulated on eth0, forwarded out of eth0.
	inner := innerUDP(oaHome, oaCN, "rev")
	for range 3 {
		if _, err := node.WriteToUDPAddrPort(tunnelData(inner), oaHA); err != nil {
			t.Fatal(err)
		}
		b, from := readWithin(t, corr, "the node's reverse-tunnelled datagram")
		if string(b) != "rev" || from != oaHome {
			t.Fatalf("the correspondent got %q from %v, want \"rev\" from %v", b, from, oaHome)
		}
	}
	if _, err := corr.WriteToUDPAddrPort([]byte("mark"), oaHome); err != nil {
		t.Fatal(err)
	}
	for {
		b, _ := readWithin(t, node, "the marker tunnelled to the node")
		if len(b) < 4+28 {
			t.Fatalf("the node got %x, want tunnel data", b)
		}
		in := b[4:]
		ihl := int(in[0]&0xf) * 4
		if in[9] == 17 && string(in[ihl+8:]) == "mark" {
			break
		}
		if in[9] == 1 && in[ihl] == 5 {
			toMN++
			t.Logf("redirect tunnelled to the node: from %v, code %d, gateway %v",
				netip.AddrFrom4([4]byte(in[12:16])), in[ihl+1], netip.AddrFrom4([4]byte(in[ihl+4:ihl+8])))
		}
	}
	return toCN, toMN
}

func (n oneArmed) sysctl(t *testing.T, key string) string {
	t.Helper()
	out, err := n.ha.Run("sysctl", "-n", key)
	if err != nil {
		t.Fatalf("sysctl -n %s: %v: %s", key, err, out)
	}
	return strings.TrimSpace(out)
}

// TestNetnsNoRedirects: with the agent's datapath set up, neither the
// correspondent nor the node hears a redirect, and the interfaces the
// agent forwards on accept none. With datapath.send_redirects the host's
// settings stay, and both hear one: what the agent did before it owned
// them, and proof that the count can see a redirect.
func TestNetnsNoRedirects(t *testing.T) {
	n := newOneArmed(t, nil)
	toCN, toMN := n.redirects(t)
	if toCN != 0 || toMN != 0 {
		t.Errorf("one-armed forwarding drew %d redirects to the correspondent and %d tunnelled to the node, want none", toCN, toMN)
	}
	for _, key := range []string{"all.send_redirects", "eth0.send_redirects", "mip0.send_redirects",
		"eth0.accept_redirects", "mip0.accept_redirects"} {
		if v := n.sysctl(t, "net.ipv4.conf."+key); v != "0" {
			t.Errorf("net.ipv4.conf.%s = %s in the agent's namespace, want 0", key, v)
		}
	}

	t.Run("send_redirects", func(t *testing.T) {
		n := newOneArmed(t, func(c *Config) { c.SendRedirects = true })
		toCN, toMN := n.redirects(t)
		if toCN == 0 || toMN == 0 {
			t.Errorf("with SendRedirects: %d redirects to the correspondent and %d tunnelled to the node, want the kernel's (at least one each)", toCN, toMN)
		}
		for _, key := range []string{"all.send_redirects", "eth0.send_redirects", "eth0.accept_redirects"} {
			if v := n.sysctl(t, "net.ipv4.conf."+key); v != "1" {
				t.Errorf("with SendRedirects: net.ipv4.conf.%s = %s, want the namespace's default 1", key, v)
			}
		}
	})
}
