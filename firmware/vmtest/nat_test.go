package vmtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hagent/hagent/firmware/vm"
	"github.com/hagent/hagent/tools/lab/reap"
)

// The NAT topology (all on the lab's bridge, the home link, which is also
// the Home Agents' uplink, as at most small sites): a NAT router at
// natWAN masquerading the node's private network 10.0.0.0/24, and a
// correspondent at farCN in another subnet on the same wire, routed to the
// home network through the virtual address like a host beyond a router (a
// correspondent on the home link itself is not answered proxy ARP for a
// UDP-tunnelled home: docs/datapath.md "In the agent").
const (
	natWAN  = "192.0.2.50"
	natCoA  = "10.0.0.7" // the node's private address, its care-of address
	farCN   = "203.0.113.9"
	haFar   = "203.0.113.1/24"
	haFarB  = "203.0.113.2/24"
	natFlow = "192.0.2.50:" // the NAT mapping's address, as hactl prints it
)

// natImage is the two-agent group image (vm.GroupConfigs) with
// nat.udp_tunnel on, so laptop-1 (192.0.2.10) is offered UDP tunnelling,
// in build/firmware/<board>-nat.
func natImage(t testing.TB) vm.Image {
	t.Helper()
	root, err := vm.Root()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := os.ReadFile(filepath.Join(root, "rootfs", "etc", "hagent.toml"))
	if err != nil {
		t.Fatal(err)
	}
	a, b, err := vm.GroupConfigs(string(ref))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "build", "firmware", defaultBoard+"-nat")
	src := filepath.Join(out, "src")
	if err := os.MkdirAll(filepath.Join(src, "extra", "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"a.toml": a, "extra/etc/hagent-b.toml": b} {
		text, err := enableNAT(text)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return buildImage(t, defaultBoard, vm.BuildOptions{
		Config: filepath.Join(src, "a.toml"), ExtraFiles: filepath.Join(src, "extra"), OutDir: out,
	})
}

// enableNAT sets udp_tunnel = true in the [nat] section of a config.
func enableNAT(cfg string) (string, error) {
	i := strings.Index(cfg, "\n[nat]\n")
	if i < 0 {
		return "", fmt.Errorf("the reference config has no [nat] section any more: update natImage")
	}
	const off, on = "\nudp_tunnel = false\n", "\nudp_tunnel = true\n"
	j := strings.Index(cfg[i:], off)
	if j < 0 {
		return "", fmt.Errorf("the reference config's [nat] has no %q any more: update natImage", strings.TrimSpace(off))
	}
	return cfg[:i+j] + on + cfg[i+j+len(off):], nil
}

// natLab is the lab of newLab (its mobile node namespace is a plain
// IP-in-IP care-of address) plus the NAT router, the node behind it and the
// far correspondent.
type natLab struct {
	*lab
	natNS, nodeNS, farNS string
}

func newNATLab(t testing.TB) *natLab {
	t.Helper()
	l := newLab(t)
	n := &natLab{lab: l}
	ctx := context.Background()
	var err error
	if n.natNS, err = l.AddHost(ctx, "nat", []string{natWAN + "/24"}, nil); err != nil {
		t.Fatal(err)
	}
	if n.farNS, err = l.AddHost(ctx, "far", []string{farCN + "/24"}, [][]string{{"default", "via", vip, "dev", "eth0", "onlink"}}); err != nil {
		t.Fatal(err)
	}
	if n.nodeNS, err = l.AddHost(ctx, "node", nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{
		{"ip", "-n", n.nodeNS, "link", "del", "eth0"}, // not on the home link: behind the NAT
		{"ip", "-n", n.natNS, "link", "add", "priv0", "type", "veth", "peer", "name", "priv1", "netns", n.nodeNS},
		{"ip", "-n", n.natNS, "addr", "add", "10.0.0.1/24", "dev", "priv0"},
		{"ip", "-n", n.natNS, "link", "set", "priv0", "up"},
		{"ip", "-n", n.nodeNS, "addr", "add", natCoA + "/24", "dev", "priv1"},
		{"ip", "-n", n.nodeNS, "link", "set", "priv1", "up"},
		{"ip", "-n", n.nodeNS, "route", "add", "default", "via", "10.0.0.1"},
		{"ip", "netns", "exec", n.nodeNS, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"},
		{"ip", "netns", "exec", n.natNS, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"ip", "netns", "exec", n.natNS, "nft", "add table ip nat; add chain ip nat post { type nat hook postrouting priority srcnat; }; add rule ip nat post oifname eth0 masquerade"},
		// The Home Agent forwards the correspondent's packets out of the
		// interface they came in on and says so with a redirect to the
		// home address itself, which only works on the home link.
		{"ip", "netns", "exec", n.farNS, "sysctl", "-qw", "net.ipv4.conf.all.accept_redirects=0", "net.ipv4.conf.eth0.accept_redirects=0"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	return n
}

// natGuest boots member idx (0: /etc/hagent.toml, 1: /etc/hagent-b.toml)
// with its home, far and foreign addresses on eth0.
func (n *natLab) natGuest(t testing.TB, img vm.Image, name string, idx int) *vm.Machine {
	t.Helper()
	tap, err := n.AddTap(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	addr, far, foreign, extra := haAddr, haFar, haForeign, []string(nil)
	if idx == 1 {
		addr, far, foreign, extra = haAddrB, haFarB, haForeignB, []string{"hagent.config=/etc/hagent-b.toml"}
	}
	return boot(t, vm.Options{
		Image: img, Name: name, Netns: n.Netns,
		Append: append([]string{"hagent.ip=eth0:" + addr + "/24,eth0:" + far + ",eth0:" + foreign, "hagent.hostname=" + name}, extra...),
		NICs:   []vm.NIC{vm.TapNIC(tap, fmt.Sprintf("52:54:00:4b:00:%02x", idx+1))},
	})
}

// proc is a long-running command whose output is kept.
type proc struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	out strings.Builder
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startNode runs mnsim as the node behind the NAT, registering laptop-1 at
// the virtual address with a UDP Tunnel Request and carrying the tunnel
// through TUN mnt0; it returns once the node is registered, with the far
// correspondent routed through the tunnel. mnsim dies with the test.
func (n *natLab) startNode(t testing.TB) *proc {
	t.Helper()
	p := &proc{}
	p.cmd = exec.Command("ip", "netns", "exec", n.nodeNS, n.mnsim, "register", "-ha", vip, "-home", homeAddr,
		"-coa", natCoA, "-spi", spi, "-key-hex", keyHex, "-lifetime", "600", "-flags", "T",
		"-udp-tunnel", "ipip", "-tun", "mnt0", "-json")
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := reap.Start(p.cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	})
	deadline := time.Now().Add(45 * time.Second) // mnsim retries until the agent answers
	for !strings.Contains(p.Output(), `"event":"registered"`) {
		if time.Now().After(deadline) {
			t.Fatalf("mnsim behind the NAT: not registered within 45s:\n%s", p.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The tunnel adds 32 bytes to the 1,500-byte path (RFC 3519 §4.8):
	// the node's own full-size packets must fit once encapsulated, or its
	// tunnel data leaves fragmented, which the decapsulation passes to the
	// agent's socket (docs/datapath.md). mnsim sizes its device so.
	for _, c := range [][]string{
		{"route", "add", farCN + "/32", "dev", "mnt0", "src", homeAddr},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", n.nodeNS}, c...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s in the node's namespace: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	if out, err := exec.Command("ip", "-n", n.nodeNS, "-o", "link", "show", "mnt0").CombinedOutput(); err != nil || !strings.Contains(string(out), " mtu 1468 ") {
		t.Fatalf("mnsim's TUN device: want mtu 1468 (the 1,500 uplink less the tunnel's 32): %v\n%s", err, out)
	}
	return p
}

var natMapping = regexp.MustCompile(`NAT mapping (` + regexp.QuoteMeta(natFlow) + `\d+)`)

// waitUDPBinding polls m until its binding of the home address is a UDP
// tunnel to a mapping of the NAT, and returns the mapping.
func waitUDPBinding(t testing.TB, m *vm.Machine, name string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, _, err := m.Run(ctx, "hactl show bindings "+homeAddr)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if mm := natMapping.FindStringSubmatch(out); mm != nil {
			t.Logf("%s: %s UDP-tunnelled to %s", name, homeAddr, mm[1])
			return mm[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no UDP-tunnelled binding of %s to a mapping of %s within %v:\n%s", name, homeAddr, natWAN, within, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// farPing pings the home address from the far correspondent and fails
// unless every echo came back.
func (n *natLab) farPing(t testing.TB, what string, m *vm.Machine, node *proc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := vm.Exec(ctx, n.farNS, "ping", "-c", "3", "-i", "0.3", "-W", "3", homeAddr)
	if err != nil || !strings.Contains(out, " 0% packet loss") {
		far := sniff(n.farNS, "eth0", "icmp", func() { _, _ = vm.Exec(ctx, n.farNS, "ping", "-c", "2", "-W", "2", homeAddr) })
		nat, _ := vm.Exec(ctx, n.natNS, "cat", "/proc/net/nf_conntrack")
		nat += "\ncorrespondent's link during two more echoes:\n" + far
		st, _, _ := m.Run(ctx, "hactl show stats")
		t.Fatalf("%s: the correspondent's ping to %s: %v\n%s\nnode:\n%s\nNAT conntrack:\n%s\nagent:\n%s", what, homeAddr, err, out, node.Output(), nat, st)
	}
}

// TestNATTraversal: the Home Agents run in arm64 guests with their Debian
// kernel; a node behind an nftables masquerade registers with the group's
// virtual address asking for UDP tunnelling (RFC 3519). The active
// member's eBPF programs load and run: a far correspondent's ping reaches
// the node through the NAT and back, a 1,500-byte DF ping is answered
// "fragmentation needed" with the tunnel MTU (the node's tunnel data
// arrives partially checksummed through virtio: the decapsulation must
// not leave that state stale, or the host's tap refuses every forwarded
// reply), and 1 MiB moves each way over TCP between the correspondent and
// the node (full-size tunnel data arrives from virtio with its payload in
// pages: the decapsulation must read past the linear part). Then the
// active guest dies; the standby takes over and, from the replicated
// binding, sends to the same NAT mapping from the virtual address and port
// 434, which the NAT still accepts: the node stays reachable without
// registering again.
func TestNATTraversal(t *testing.T) {
	need(t, true, "ip", "depmod", "xz", "ping", "nft")
	img := natImage(t)
	need(t, true, img.Board.QEMU)
	n := newNATLab(t)
	a := n.natGuest(t, img, "ha1", 0)
	b := n.natGuest(t, img, "ha2", 1)
	waitReady(t, a, "ha1")
	waitReady(t, b, "ha2")
	waitRole(t, a, "ha1", "active", 30*time.Second)
	waitRole(t, b, "ha2", "standby", 30*time.Second)

	// The programs need sch_ingress and cls_bpf, modules of this kernel.
	mods := run(t, a, "cat /proc/modules")
	for _, mod := range []string{"sch_ingress", "cls_bpf"} {
		if !strings.Contains(mods, mod+" ") {
			t.Fatalf("ha1: module %s not loaded:\n%s", mod, mods)
		}
	}

	node := n.startNode(t)
	mapping := waitUDPBinding(t, a, "ha1", 10*time.Second)
	if got := waitUDPBinding(t, b, "ha2", 10*time.Second); got != mapping {
		t.Fatalf("ha2 replicated the NAT mapping %s, ha1 has %s", got, mapping)
	}
	before := run(t, a, "hactl show stats")
	n.farPing(t, "through ha1", a, node)
	after := run(t, a, "hactl show stats")
	for _, c := range []string{"udp tunnel encapsulated", "udp tunnel decapsulated"} {
		if d := counter(after, c) - counter(before, c); d < 3 {
			t.Fatalf("ha1: %q moved by %d over 3 echoes each way:\n%s", c, d, after)
		}
	}

	// RFC 3519 §4.8: the tunnel adds 32 bytes to a 1,500-byte uplink.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	out, _ := vm.Exec(ctx, n.farNS, "ping", "-M", "do", "-s", "1472", "-c", "1", "-W", "3", homeAddr)
	cancel()
	if !strings.Contains(out, "mtu = 1468") {
		t.Fatalf("a 1,500-byte DF ping through the UDP tunnel: want fragmentation needed with mtu = 1468:\n%s", out)
	}
	t.Logf("1,500-byte DF ping: %s", strings.TrimSpace(out))
	// Full-size TCP segments both ways: the correspondent learns the
	// tunnel MTU from that answer, the node's are sized by its TUN MTU;
	// a black hole on either path stalls the transfer.
	before = run(t, a, "hactl show stats")
	line, err := tcpTransfer(t, n.nodeNS, n.farNS, homeAddr, 5001, 1<<20)
	if err != nil {
		st := run(t, a, "hactl show stats")
		t.Fatalf("1 MiB each way over TCP through the UDP tunnel: %v\nnode:\n%s\nagent before:\n%s\nagent after:\n%s", err, node.Output(), before, st)
	}
	t.Logf("TCP through the UDP tunnel: %s", line)
	// The failover: QEMU killed by PID takes ha1's NIC and the virtual
	// address with it.
	a.Kill()
	waitRole(t, b, "ha2", "active", 20*time.Second)
	if got := waitUDPBinding(t, b, "ha2", 0); got != mapping {
		t.Fatalf("ha2 after the failover: NAT mapping %s, want %s", got, mapping)
	}
	// The correspondent's neighbour entry for the virtual address follows
	// the gratuitous ARPs; a probe that may fail lets it.
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	_, _ = vm.Exec(ctx, n.farNS, "ping", "-c", "1", "-W", "1", vip)
	cancel()
	before = run(t, b, "hactl show stats")
	n.farPing(t, "through ha2 after the failover", b, node)
	after = run(t, b, "hactl show stats")
	for _, c := range []string{"udp tunnel encapsulated", "udp tunnel decapsulated"} {
		if d := counter(after, c) - counter(before, c); d < 3 {
			t.Fatalf("ha2: %q moved by %d over 3 echoes each way:\n%s", c, d, after)
		}
	}
	if o := node.Output(); strings.Count(o, `"event":"registered"`) != 1 || strings.Contains(o, `"rebinds":1`) {
		t.Fatalf("the node registered again; the failover was to need none:\n%s", o)
	}
	poweroff(t, b, "ha2")
}

// sniff returns what tshark decodes on dev in ns while fn runs (a failed
// check's evidence: addresses, ICMP type and checksum status, MACs).
func sniff(ns, dev, filter string, fn func()) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "tshark", "-i", dev, "-n", "-l", "-a", "duration:8",
		"-f", filter, "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
		"-T", "fields", "-e", "eth.src", "-e", "eth.dst", "-e", "ip.src", "-e", "ip.dst", "-e", "icmp.type",
		"-e", "icmp.checksum.status", "-e", "frame.len", "-e", "ip.flags.mf", "-e", "tcp.len", "-e", "tcp.checksum.status", "-e", "tcp.flags.str", "-e", "_ws.expert.message", "-e", "ip.flags.df")
	p := &proc{cmd: cmd}
	cmd.Stdout, cmd.Stderr = p, p
	if err := reap.Start(cmd); err != nil {
		return err.Error()
	}
	for i := 0; i < 100 && !strings.Contains(p.Output(), "Capturing on"); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	fn()
	_ = cmd.Wait()
	return p.Output()
}
