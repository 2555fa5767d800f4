package itest

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/tools/lab"
)

// natConfig is a standalone agent on the home link that offers RFC 3519
// UDP tunnelling, with the kernel datapath. The build machines' kernel has
// no IP-in-IP driver: the datapath then serves UDP tunnels alone.
const natAgentConfig = `
[agent]
interface = "eth0"
address = "192.0.2.1"
home_network = "192.0.2.0/24"
capacity = 16
max_lifetime = 600
replay_tolerance = "7s"
console_socket = "@SOCKET@"
log_level = "debug"

[nat]
udp_tunnel = true
keepalive_interval = "20s"
uplink_interface = "up0"

[[node]]
name = "bus-12"
home_address = "192.0.2.10"
spi = 256
key = "text:bus12-secret-01234"
reverse_tunnel = true

[datapath]
enabled = true
`

// natLab is the home link (agent and correspondent on one bridge), the
// agent's uplink to a NAT (198.51.100.1 ↔ 198.51.100.50), and a mobile node
// in a private namespace behind that NAT's nftables masquerade: 10.0.0.7
// leaves as 198.51.100.50. The uplink is its own interface because the
// kernel answers proxy ARP only for an address routed out of another
// interface than the one asked on.
type natLab struct {
	l           *lab.Lab
	ha, cn, nat *lab.Host
	mn          *lab.Host
}

func newNATLab(t *testing.T) *natLab {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (nftables) for the NAT")
	}
	l := lab.NewT(t)
	n := &natLab{l: l}
	n.ha = l.HostT(t, "ha", "192.0.2.1/24")
	n.cn = l.HostT(t, "cn", "192.0.2.30/24")
	n.nat = l.HostT(t, "nat") // neither it nor the node is on the home link:
	n.mn = l.HostT(t, "mn")   // their cables to it are pulled
	for _, h := range []*lab.Host{n.nat, n.mn} {
		if err := h.LinkDown(); err != nil {
			t.Fatal(err)
		}
		if err := h.IP("link", "set", "eth0", "down"); err != nil {
			t.Fatal(err)
		}
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
	ip(n.ha, "link", "add", "up0", "type", "veth", "peer", "name", "wan0", "netns", n.nat.NS)
	ip(n.ha, "addr", "add", "198.51.100.1/24", "dev", "up0")
	ip(n.ha, "link", "set", "up0", "up")
	ip(n.nat, "addr", "add", "198.51.100.50/24", "dev", "wan0")
	ip(n.nat, "link", "set", "wan0", "up")
	ip(n.nat, "route", "add", "192.0.2.0/24", "via", "198.51.100.1")
	ip(n.nat, "link", "add", "priv0", "type", "veth", "peer", "name", "priv1", "netns", n.mn.NS)
	ip(n.nat, "addr", "add", "10.0.0.1/24", "dev", "priv0")
	ip(n.nat, "link", "set", "priv0", "up")
	ip(n.mn, "addr", "add", "10.0.0.7/24", "dev", "priv1")
	ip(n.mn, "link", "set", "priv1", "up")
	ip(n.mn, "route", "add", "default", "via", "10.0.0.1")
	run(n.nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	run(n.nat, "nft", "add table ip nat; add chain ip nat post { type nat hook postrouting priority srcnat; }; add rule ip nat post oifname wan0 masquerade")
	run(n.mn, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
	return n
}

// startNode runs mnsim as the NAT'd node, its traffic through TUN mnt0,
// and waits for its first registration. The correspondent is routed
// through the tunnel; the home agent through the NAT. Keepalives leave
// after a second without traffic (not the 20 s the agent announces), so
// the test sees them answered.
func (n *natLab) startNode(t *testing.T) *lab.Proc {
	t.Helper()
	p, err := n.mn.Start(filepath.Join(Bins(t), "mnsim"), "register", "-ha", "192.0.2.1", "-home", "192.0.2.10",
		"-coa", "10.0.0.7", "-spi", "256", "-key", "bus12-secret-01234", "-lifetime", "600", "-flags", "T",
		"-udp-tunnel", "ipip", "-tun", "mnt0", "-keepalive", "1s", "-json")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(`"event":"registered"`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := n.mn.IP("route", "add", "192.0.2.30/32", "dev", "mnt0", "src", "192.0.2.10"); err != nil {
		t.Fatal(err)
	}
	return p
}

// diag is what a failed ping needs looked at: the agent's routes and proxy
// entries, the correspondent's neighbours, the NAT's connections.
func (n *natLab) diag() string {
	var b strings.Builder
	for _, c := range []struct {
		h    *lab.Host
		args []string
	}{
		{n.ha, []string{"ip", "route", "show", "proto", "77"}},
		{n.ha, []string{"ip", "neigh", "show", "proxy"}},
		{n.ha, []string{"tc", "filter", "show", "dev", "up0", "ingress"}},
		{n.cn, []string{"ip", "neigh"}},
		{n.mn, []string{"ip", "route"}},
		{n.nat, []string{"cat", "/proc/net/nf_conntrack"}},
	} {
		out, err := c.h.Run(c.args[0], c.args[1:]...)
		b.WriteString(c.h.Name + ": " + strings.Join(c.args, " ") + "\n" + out)
		if err != nil {
			b.WriteString(err.Error() + "\n")
		}
	}
	return b.String()
}

func showStats(t *testing.T, a *Agent) map[string]uint64 {
	t.Helper()
	resp, err := console.Call(a.Socket, console.Request{Cmd: "show stats"}, 5*time.Second)
	if err != nil || resp.Stats == nil {
		t.Fatalf("show stats: %v %+v", err, resp)
	}
	m := map[string]uint64{}
	for _, c := range resp.Stats.Datapath {
		m[c.Name] = c.Value
	}
	for _, c := range resp.Stats.Replies {
		m["reply "+c.Name] = c.Value
	}
	return m
}

// TestNATTraversalNetns: a node behind an nftables masquerade registers
// with the real agent asking for UDP tunnelling; tshark decodes both
// extensions; a correspondent's ping reaches the node through the NAT and
// back; after a re-bind (a new local port, so a new NAT mapping) the node
// re-registers and the traffic follows it.
func TestNATTraversalNetns(t *testing.T) {
	n := newNATLab(t)
	needTshark := false
	var pcap string
	var capt *lab.Proc
	if _, err := exec.LookPath("tshark"); err == nil {
		needTshark = true
		pcap = filepath.Join(t.TempDir(), "nat.pcap")
		// Registrations only (the payload's first byte 1 or 3): tunnel data
		// shares the port.
		p, err := n.ha.Start("tshark", "-i", "up0", "-f", "udp port 434 and (udp[8] = 1 or udp[8] = 3)", "-w", pcap)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.WaitFor("Capturing on", 20*time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // "Capturing on" comes slightly before the ring is armed
		capt = p
	}
	a := StartAgent(t, n.ha, natAgentConfig)
	if !strings.Contains(a.Proc.Output(), "IP-in-IP tunnelling unavailable") {
		t.Log("the kernel has IP-in-IP: the agent serves both")
	}
	node := n.startNode(t)

	row := findRow(bindings(t, a), "192.0.2.10")
	if row == nil || row.Tunnel != "udp" || !strings.HasPrefix(row.NAT, "198.51.100.50:") || row.CareOf != "10.0.0.7" {
		t.Fatalf("binding after the registration through the NAT: %+v", row)
	}
	firstNAT := row.NAT
	out, err := a.Hactl("show", "bindings")
	if err != nil || !strings.Contains(out, "udp 1") || !strings.Contains(out, firstNAT) {
		t.Fatalf("hactl show bindings: %v\n%s", err, out)
	}

	ping := func(what string) {
		t.Helper()
		out, err := n.cn.Run("ping", "-c", "3", "-i", "0.2", "-W", "3", "192.0.2.10")
		if err != nil || !strings.Contains(out, " 0% packet loss") {
			t.Fatalf("%s: correspondent's ping to the home address: %v\n%s\nagent:\n%s\nnode:\n%s\n%s", what, err, out, a.Proc.Output(), node.Output(), n.diag())
		}
	}
	ping("first mapping")
	// A 1,500-byte packet with DF does not fit the tunnel (1,500 − 32): the
	// agent answers "fragmentation needed" with the tunnel MTU (RFC 3519
	// §4.8; docs/datapath.md "Tunnel MTU").
	if out, _ := n.cn.Run("ping", "-M", "do", "-s", "1472", "-c", "1", "-W", "3", "192.0.2.10"); !strings.Contains(out, "mtu = 1468") {
		t.Fatalf("a 1,500-byte DF ping through the UDP tunnel, want fragmentation needed with mtu = 1468:\n%s", out)
	}
	s := showStats(t, a)
	if s["udp tunnel encapsulated"] < 3 || s["udp tunnel decapsulated"] < 3 {
		t.Fatalf("UDP tunnel counters after 3 pings: %v", s)
	}

	// A new NAT mapping: the node moves to a new local port (SIGUSR1), so
	// the masquerade maps a new one, and re-registers from there.
	if err := node.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if err := node.WaitFor(`"rebinds":1`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	row = findRow(bindings(t, a), "192.0.2.10")
	if row == nil || row.Tunnel != "udp" || row.NAT == firstNAT || !strings.HasPrefix(row.NAT, "198.51.100.50:") {
		t.Fatalf("binding after the re-bind: %+v (first mapping %s)", row, firstNAT)
	}
	ping("after the re-bind")
	s2 := showStats(t, a)
	if s2["udp tunnel encapsulated"] < s["udp tunnel encapsulated"]+3 || s2["udp tunnel decapsulated"] < s["udp tunnel decapsulated"]+3 {
		t.Fatalf("UDP tunnel counters after the re-bind's pings: before %v after %v", s, s2)
	}

	// Tunnel data for the node's home address from another port of the
	// NAT (a stale mapping, or a spoofer beside it; 2999 is below the
	// ephemeral range the node's mappings come from) is dropped and counted.
	forged := "04040000" + // tunnel data header, next header IPv4
		"4500004000000000400100" + "00c000020ac000021e" + // 192.0.2.10 → 192.0.2.30, ICMP
		"0800" + strings.Repeat("00", 42)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Log("python3 not installed: the wrong-port check was skipped")
	} else {
		if out, err := n.nat.Run("python3", "-c", `import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
s.bind(("198.51.100.50",2999))
s.sendto(bytes.fromhex(sys.argv[1]),("192.0.2.1",434))`, forged); err != nil {
			t.Fatalf("sending forged tunnel data from the NAT: %v %s", err, out)
		}
		eventually(t, 5*time.Second, "the forged tunnel data counted as from the wrong port", func() (bool, string) {
			s3 := showStats(t, a)
			return s3["udp tunnel dropped in: wrong NAT port"] == s2["udp tunnel dropped in: wrong NAT port"]+1,
				fmt.Sprint(s3["udp tunnel dropped in: wrong NAT port"])
		})
	}

	// Keepalives: the agent counts them (not as data) and answers each
	// (an echo reply through the tunnel, which refreshes the mapping from
	// its side too). Two counted: the first one's answer, a round trip in
	// namespaces, is back long before the second leaves a second later.
	eventually(t, 15*time.Second, "two keepalives counted by the agent", func() (bool, string) {
		n := showStats(t, a)["udp tunnel keepalives"]
		return n >= 2, fmt.Sprint(n)
	})

	_ = node.Signal(syscall.SIGTERM)
	<-node.Done()
	var stopped struct {
		Event          string `json:"event"`
		DataIn         uint64 `json:"data_in"`
		DataOut        uint64 `json:"data_out"`
		Keepalives     uint64 `json:"keepalives"`
		KeepaliveEchos uint64 `json:"keepalive_echos"`
	}
	for _, l := range strings.Split(node.Output(), "\n") {
		if strings.Contains(l, `"stopped"`) {
			_ = json.Unmarshal([]byte(l), &stopped)
		}
	}
	if stopped.DataIn < 6 || stopped.DataOut < 6 {
		t.Errorf("the node carried %d packets in, %d out through its TUN, want ≥ 6 each:\n%s", stopped.DataIn, stopped.DataOut, node.Output())
	}
	if stopped.Keepalives < 2 || stopped.KeepaliveEchos == 0 {
		t.Errorf("the node sent %d keepalives and got %d echo replies, want ≥ 2 and > 0 (the Home Agent answers keepalives):\n%s", stopped.Keepalives, stopped.KeepaliveEchos, node.Output())
	}

	if !needTshark {
		t.Log("tshark not installed: the capture was skipped")
		return
	}
	time.Sleep(300 * time.Millisecond)
	_ = capt.Signal(syscall.SIGINT)
	select {
	case <-capt.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("tshark did not stop on SIGINT")
	}
	fields, err := exec.Command("tshark", "-n", "-r", pcap, "-T", "fields", "-E", "separator=|", "-E", "occurrence=a",
		"-e", "mip.type", "-e", "mip.ext.utrq.encaptype", "-e", "mip.ext.utrp.code", "-e", "mip.ext.utrp.keepalive",
		"-e", "mip.auth.spi", "-e", "_ws.malformed").Output()
	if err != nil {
		t.Fatalf("tshark -r: %v", err)
	}
	var reqs, reps int
	for _, l := range strings.Split(strings.TrimSpace(string(fields)), "\n") {
		f := strings.Split(l, "|")
		if len(f) < 6 {
			continue
		}
		switch {
		case f[0] == "1" && f[1] == "4" && f[4] == "0x00000100":
			reqs++
		case f[0] == "3" && f[2] == "0" && f[3] == "20" && f[4] == "0x00000100":
			reps++
		}
		if f[5] != "" {
			t.Errorf("tshark: malformed: %s", l)
		}
	}
	if reqs < 2 || reps < 2 {
		t.Fatalf("tshark decoded %d requests with a UDP Tunnel Request (ipip) and %d replies with a UDP Tunnel Reply (will do, keepalive 20), want ≥ 2 each:\n%s", reqs, reps, fields)
	}
	bad, err := exec.Command("tshark", "-r", pcap, "-Y", "_ws.malformed || _ws.expert.severity >= warning").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	if s := strings.TrimSpace(string(bad)); s != "" {
		t.Fatalf("tshark reports malformed packets or expert warnings:\n%s", s)
	}
	t.Logf("tshark decoded %d requests and %d replies with the UDP tunnel extensions", reqs, reps)
}
