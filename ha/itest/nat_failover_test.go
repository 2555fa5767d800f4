package itest

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/tools/lab"
)

// natGroupConfig is member i (1-based) of a two-member VRRP group sharing
// 192.0.2.1, offering UDP tunnelling with its kernel datapath, uplink = the
// home interface (one interface, as most small sites are wired).
func natGroupConfig(i int) string {
	return fmt.Sprintf(`
[agent]
interface = "eth0"
address = "192.0.2.1%d"
virtual_address = "192.0.2.1"
home_network = "192.0.2.0/24"
console_socket = "@SOCKET@"
log_level = "debug"
capacity = 64

[nat]
udp_tunnel = true
keepalive_interval = "20s"

[[node]]
name = "bus-12"
home_address = "192.0.2.10"
spi = 256
key = "text:bus12-secret-01234"
reverse_tunnel = true

[group]
enabled = true
key = "text:group-secret-for-tests-0123"
anti_entropy_interval = "2s"

[vrrp]
enabled = true
vrid = 53
priority = %d
advert_interval = "100ms"
garp_count = 1

[datapath]
enabled = true
`, i, 140-10*i)
}

// TestNATFailoverNetns: a node behind a NAT registers with the active
// member of a group through the virtual address; the active member is
// killed; the standby takes over the virtual address and, from the binding
// the group replicated (endpoint included), sends the correspondent's
// traffic to the same NAT mapping from the virtual address and port 434,
// which the NAT still accepts: the ping goes on reaching the node with no
// re-registration.
//
// The home link is also the uplink here. A correspondent on the home link
// itself cannot reach a UDP-tunnelled node then (proxy ARP is not answered
// for an address routed out of the interface asked on: docs/datapath.md),
// so the correspondent is in another subnet on the same wire and routes to
// the home address through the virtual address, like a host beyond a
// router.
func TestNATFailoverNetns(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (nftables) for the NAT")
	}
	l := lab.NewT(t)
	h1 := l.HostT(t, "ha1", "192.0.2.11/24", "203.0.113.1/24")
	h2 := l.HostT(t, "ha2", "192.0.2.12/24", "203.0.113.2/24")
	cn := l.HostT(t, "cn", "203.0.113.9/24")
	nat := l.HostT(t, "nat", "192.0.2.50/24")
	mn := l.HostT(t, "mn")
	if err := mn.LinkDown(); err != nil {
		t.Fatal(err)
	}
	run := func(h *lab.Host, name string, args ...string) {
		t.Helper()
		if out, err := h.Run(name, args...); err != nil {
			t.Fatalf("%s: %s %v: %v\n%s", h.Name, name, args, err, out)
		}
	}
	ip := func(h *lab.Host, args ...string) {
		t.Helper()
		if err := h.IP(args...); err != nil {
			t.Fatal(err)
		}
	}
	ip(mn, "link", "set", "eth0", "down")
	ip(nat, "link", "add", "priv0", "type", "veth", "peer", "name", "priv1", "netns", mn.NS)
	ip(nat, "addr", "add", "10.0.0.1/24", "dev", "priv0")
	ip(nat, "link", "set", "priv0", "up")
	ip(mn, "addr", "add", "10.0.0.7/24", "dev", "priv1")
	ip(mn, "link", "set", "priv1", "up")
	ip(mn, "route", "add", "default", "via", "10.0.0.1")
	run(mn, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
	run(nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	run(nat, "nft", "add table ip nat; add chain ip nat post { type nat hook postrouting priority srcnat; }; add rule ip nat post oifname eth0 masquerade")
	ip(cn, "route", "replace", "192.0.2.10/32", "via", "192.0.2.1", "dev", "eth0", "onlink")
	run(cn, "sysctl", "-qw", "net.ipv4.conf.all.accept_redirects=0", "net.ipv4.conf.eth0.accept_redirects=0")

	a1 := StartAgent(t, h1, natGroupConfig(1))
	a2 := StartAgent(t, h2, natGroupConfig(2))
	eventually(t, 15*time.Second, "member 1 active, member 2 standby and synced", func() (bool, string) {
		r1, r2 := redundancy(t, a1), redundancy(t, a2)
		return strings.HasPrefix(r1.Role, "active") && strings.HasPrefix(r2.Role, "standby") && r2.Synced, r1.Role + " / " + r2.Role
	})

	node, err := mn.Start(filepath.Join(Bins(t), "mnsim"), "register", "-ha", "192.0.2.1", "-home", "192.0.2.10",
		"-coa", "10.0.0.7", "-spi", "256", "-key", "bus12-secret-01234", "-lifetime", "600", "-flags", "T",
		"-udp-tunnel", "ipip", "-tun", "mnt0", "-json")
	if err != nil {
		t.Fatal(err)
	}
	if err := node.WaitFor(`"event":"registered"`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	ip(mn, "route", "add", "203.0.113.9/32", "dev", "mnt0", "src", "192.0.2.10")
	var mapping string
	eventually(t, 10*time.Second, "both members hold the UDP binding with its NAT mapping", func() (bool, string) {
		r1, r2 := findRow(bindings(t, a1), "192.0.2.10"), findRow(bindings(t, a2), "192.0.2.10")
		if r1 == nil || r2 == nil {
			return false, fmt.Sprintf("%+v / %+v", r1, r2)
		}
		mapping = r1.NAT
		return r1.Tunnel == "udp" && strings.HasPrefix(r1.NAT, "192.0.2.50:") && r2.Tunnel == "udp" && r2.NAT == r1.NAT,
			fmt.Sprintf("%+v / %+v", r1, r2)
	})
	ping := func(what string) {
		t.Helper()
		out, err := cn.Run("ping", "-c", "3", "-i", "0.2", "-W", "3", "192.0.2.10")
		if err != nil || !strings.Contains(out, " 0% packet loss") {
			natOut, _ := nat.Run("cat", "/proc/net/nf_conntrack")
			t.Fatalf("%s: correspondent's ping to the home address: %v\n%s\nnode:\n%s\nNAT:\n%s", what, err, out, node.Output(), natOut)
		}
	}
	ping("through member 1")
	// Forwarded in and out of the same interface, both ways: the agent
	// itself keeps the kernel from redirecting the correspondent to the
	// home address and the node to the correspondent.
	if n := outRedirects(t, h1); n != 0 {
		t.Fatalf("member 1 sent %d ICMP redirects forwarding the pings", n)
	}

	// Crash the active member and pull its cable (its kernel would keep
	// the virtual address otherwise).
	if err := a1.Proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a1.Proc.Done()
	if err := h1.LinkDown(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "member 2 active", func() (bool, string) {
		r := redundancy(t, a2)
		return strings.HasPrefix(r.Role, "active"), r.Role
	})
	// The correspondent's neighbour entry for the virtual address follows
	// the gratuitous ARP; give it the benefit of one failed probe.
	_, _ = cn.Run("ping", "-c", "1", "-W", "1", "192.0.2.1")
	ping("through member 2 after the failover")
	if n := outRedirects(t, h2); n != 0 {
		t.Fatalf("member 2 sent %d ICMP redirects forwarding the pings", n)
	}
	s := showStats(t, a2)
	if s["udp tunnel encapsulated"] < 3 || s["udp tunnel decapsulated"] < 3 {
		t.Fatalf("member 2's UDP tunnel counters after the failover's pings: %v", s)
	}
	if strings.Contains(node.Output(), `"rebinds":1`) || strings.Count(node.Output(), `"event":"registered"`) != 1 {
		t.Fatalf("the node re-registered; the failover was to need none:\n%s", node.Output())
	}
	if r := findRow(bindings(t, a2), "192.0.2.10"); r == nil || r.NAT != mapping {
		t.Fatalf("member 2's binding after the failover: %+v, want the NAT mapping %s", r, mapping)
	}
}
