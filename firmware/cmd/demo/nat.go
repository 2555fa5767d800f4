package main

// The node behind NAT: beside the plain node, a mobile router on a
// "cellular" network with a private care-of address registers through a
// masquerading router (a host namespace with nftables) asking for RFC 3519
// UDP tunnelling. The correspondent reaches its home address through the
// NAT mapping the registration opened, and after the failover through the
// new active member, which sends to the same mapping from the virtual
// address and port 434, without the node registering again.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hagent/hagent/firmware/vm"
	"github.com/hagent/hagent/tools/lab/reap"
)

const (
	natPublic  = "198.51.100.50" // the NAT router's address on the LAN: the mapping's address
	natInside  = "10.0.0.1"      // the NAT router's private address, the node's gateway
	natCoA     = "10.0.0.7"      // the node's private care-of address
	natHome    = "192.0.2.130"   // a home address of the reference config's "fleet" pool
	natSPI     = "300"
	natKeyHex  = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978"
	natTun     = "mnt0"
	natPings   = 3
	natTimeout = 15 * time.Second
)

// noRedirects are kernel parameters (sysctl.* on the command line) that
// keep the guests from sending ICMP redirects. A member forwards the
// correspondent's packets for the node behind NAT, and the node's replies,
// back out of the interface they came in on; each would draw a redirect,
// the one to the node tunnelled to it like data (doubling the counters the
// demo shows) for nothing: the correspondent ignores them and the node
// cannot use them. eth0 may exist before the parameters apply (a built-in
// driver) or after (a module), hence all three.
var noRedirects = []string{
	"sysctl.net.ipv4.conf.all.send_redirects=0",
	"sysctl.net.ipv4.conf.default.send_redirects=0",
	"sysctl.net.ipv4.conf.eth0.send_redirects=0",
}

// demoConfigs are the group's two configs with nat.udp_tunnel on: the
// reference config ships it off, and the demo's image is its own
// (build/firmware/BOARD-demo) so that other users of the group image keep
// the shipped configs.
func demoConfigs(ref string) (a, b string, err error) {
	if a, b, err = vm.GroupConfigs(ref); err != nil {
		return "", "", err
	}
	if a, err = setKey(a, "nat", "udp_tunnel", "true"); err != nil {
		return "", "", err
	}
	b, err = setKey(b, "nat", "udp_tunnel", "true")
	return a, b, err
}

// setKey rewrites the line of key in [section] of a TOML text to
// `key = value`, keeping every other line; it fails when the key is not
// there, so that a reworded reference config cannot silently leave the
// demo without what it shows.
func setKey(text, section, key, value string) (string, error) {
	lines := strings.Split(text, "\n")
	cur := ""
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[") {
			cur = strings.Trim(t, "[]")
			continue
		}
		if cur == section && strings.HasPrefix(t, key+" ") && strings.Contains(t, "=") {
			lines[i] = key + " = " + value
			return strings.Join(lines, "\n"), nil
		}
	}
	return "", fmt.Errorf("reference config rootfs/etc/hagent.toml: no %s in [%s] (the demo turns it on)", key, section)
}

// buildImage builds the demo's image: the group image of vm.BuildGroup with
// demoConfigs, into build/firmware/BOARD-demo.
func buildImage(ctx context.Context, root, boardName string, log io.Writer) (vm.Image, error) {
	ref, err := os.ReadFile(filepath.Join(root, "rootfs", "etc", "hagent.toml"))
	if err != nil {
		return vm.Image{}, err
	}
	a, b, err := demoConfigs(string(ref))
	if err != nil {
		return vm.Image{}, err
	}
	out := filepath.Join(root, "build", "firmware", boardName+"-demo")
	src := filepath.Join(out, "src")
	if err := os.MkdirAll(filepath.Join(src, "extra", "etc"), 0o755); err != nil {
		return vm.Image{}, err
	}
	for name, text := range map[string]string{"a.toml": a, "extra/etc/hagent-b.toml": b} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(text), 0o644); err != nil {
			return vm.Image{}, err
		}
	}
	return vm.Build(ctx, root, boardName, vm.BuildOptions{
		Config: filepath.Join(src, "a.toml"), ExtraFiles: filepath.Join(src, "extra"), OutDir: out, Log: log,
	})
}

// natNode is the node behind NAT: its namespaces and its mnsim, which stays
// up carrying the home address's traffic through a TUN device.
type natNode struct {
	natNS, nodeNS string
	cmd           *exec.Cmd
	mu            sync.Mutex
	out           strings.Builder // mnsim's stdout and stderr
	registered    chan string     // each "registered from ..." line
	exited        chan struct{}
}

func (n *natNode) output() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.out.String()
}

// natLAN makes the NAT router (eth0 on the LAN, priv0 towards the node,
// nftables masquerade out of eth0) and the node's namespace behind it.
func (d *demo) natLAN(ctx context.Context) error {
	n := &natNode{registered: make(chan string, 4), exited: make(chan struct{})}
	d.nat = n
	var err error
	// The virtual address on-link, as for the plain node: after the
	// failover the NAT reaches the new active member by ARP.
	if n.natNS, err = d.lab.AddHost(ctx, "nat", []string{natPublic + "/24"}, [][]string{{vip + "/32", "dev", "eth0"}}); err != nil {
		return fail("setup", "%v", err)
	}
	// The node's namespace is not on the LAN: its only link is to the NAT.
	if n.nodeNS, err = d.lab.AddHost(ctx, "bus", nil, nil); err != nil {
		return fail("setup", "%v", err)
	}
	for _, c := range [][]string{
		{"ip", "-n", n.nodeNS, "link", "del", "eth0"},
		{"ip", "-n", n.natNS, "link", "add", "priv0", "type", "veth", "peer", "name", "eth0", "netns", n.nodeNS},
		{"ip", "-n", n.natNS, "addr", "add", natInside + "/24", "dev", "priv0"},
		{"ip", "-n", n.natNS, "link", "set", "priv0", "up"},
		{"ip", "-n", n.nodeNS, "addr", "add", natCoA + "/24", "dev", "eth0"},
		{"ip", "-n", n.nodeNS, "link", "set", "eth0", "up"},
		{"ip", "-n", n.nodeNS, "route", "add", "default", "via", natInside},
		// The correspondent's packets come in on the TUN device. No IPv6:
		// the TUN device's router solicitations would go into the tunnel
		// and be counted as data the agent drops.
		{"ip", "netns", "exec", n.nodeNS, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
			"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"},
		{"ip", "netns", "exec", n.natNS, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"ip", "netns", "exec", n.natNS, "nft", "add table ip nat; add chain ip nat post { type nat hook postrouting priority srcnat; }; add rule ip nat post oifname eth0 masquerade"},
		// One interface per Home Agent: the agent does not answer proxy
		// ARP for a UDP-tunnelled node on the interface its route leaves
		// by (docs/datapath.md), so the correspondent routes the node's
		// home address via the virtual address, as a host beyond a router
		// would; the member then forwards back out of the interface the
		// packet came in on, and its redirect is to be ignored.
		{"ip", "-n", d.cnNS, "route", "add", natHome + "/32", "via", vip, "dev", "eth0"},
		{"ip", "netns", "exec", d.cnNS, "sysctl", "-qw", "net.ipv4.conf.all.accept_redirects=0", "net.ipv4.conf.eth0.accept_redirects=0"},
	} {
		if out, err := exec.CommandContext(ctx, c[0], c[1:]...).CombinedOutput(); err != nil {
			return fail("setup", "%s: %v: %s (the NAT needs nftables: tools/ci/deps.sh demo installs it)", strings.Join(c, " "), err, strings.TrimSpace(string(out)))
		}
	}
	d.say("namespace %s: NAT router %s, masquerading %s/24 (nftables)", n.natNS, natPublic, natInside)
	d.say("namespace %s: mobile router behind the NAT, care-of address %s", n.nodeNS, natCoA)
	return nil
}

var tunnelLine = regexp.MustCompile(`(?m)^  Tunnel {2,}(\S.*?)\s*$`)

// natMapping polls `hactl show bindings natHome` on guest i until its
// binding is tunnelled in UDP to a mapping on the NAT's address, and
// returns the mapping ("198.51.100.50:40123") and the Tunnel line.
func (d *demo) natMapping(ctx context.Context, i int, within time.Duration) (mapping, tunnel, out string, ok bool) {
	deadline := time.Now().Add(within)
	for {
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		o, _, err := d.guests[i].Run(c, "hactl show bindings "+natHome)
		cancel()
		out = vm.StripLogs(o)
		if err != nil {
			out = "console: " + err.Error()
		}
		if m := tunnelLine.FindStringSubmatch(out); m != nil && strings.Contains(out, ": live") {
			tunnel = m[1]
			if rest, found := strings.CutPrefix(tunnel, "udp to NAT mapping "+natPublic+":"); found {
				port, _, _ := strings.Cut(rest, ",")
				return natPublic + ":" + port, tunnel, out, true
			}
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return "", tunnel, out, false
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// natRegister starts the node behind NAT (mnsim register -udp-tunnel ipip
// -tun) and checks that both members hold its UDP binding with the same
// mapping.
func (d *demo) natRegister(ctx context.Context, active, standby int) error {
	n := d.nat
	d.section("4b. a mobile router behind NAT registers with UDP tunnelling (RFC 3519)")
	args := []string{"netns", "exec", n.nodeNS, d.mnsim, "register", "-ha", vip, "-home", natHome, "-coa", natCoA,
		"-spi", natSPI, "-key-hex", natKeyHex, "-lifetime", "600", "-flags", "T", "-timeout", "2s", "-retries", "2",
		"-udp-tunnel", "ipip", "-tun", natTun}
	n.cmd = exec.Command("ip", args...)
	pr, pw := io.Pipe()
	n.cmd.Stdout, n.cmd.Stderr = pw, pw
	if err := n.cmd.Start(); err != nil {
		return fail("NAT registration", "starting mnsim in %s: %v", n.nodeNS, err)
	}
	go func() {
		_ = n.cmd.Wait()
		pw.Close()
	}()
	go func() {
		defer close(n.exited) // after the last line is read
		s := bufio.NewScanner(pr)
		for s.Scan() {
			l := s.Text()
			n.mu.Lock()
			n.out.WriteString(l + "\n")
			n.mu.Unlock()
			if strings.HasPrefix(l, "registered from ") {
				select {
				case n.registered <- l:
				default:
				}
			}
		}
	}()
	select {
	case l := <-n.registered:
		d.say("mnsim register -ha %s -home %s -coa %s -udp-tunnel ipip -tun %s (stays up):", vip, natHome, natCoA, natTun)
		d.detail("%s", l)
	case <-n.exited:
		return fail("NAT registration", "mnsim register -udp-tunnel ipip should be accepted by %s (active) through the NAT %s; it exited: %s",
			d.names[active], natPublic, oneLine(n.output(), nil))
	case <-time.After(natTimeout):
		return fail("NAT registration", "mnsim register -udp-tunnel ipip should be accepted by %s (active) through the NAT %s within %v; mnsim said: %s",
			d.names[active], natPublic, natTimeout, oneLine(n.output(), nil))
	case <-ctx.Done():
		return ctx.Err()
	}
	var mapping string
	for _, i := range []int{active, standby} {
		step := "NAT registration"
		if i == standby {
			step = "NAT replication"
		}
		m, tunnel, out, ok := d.natMapping(ctx, i, replicaTimeout)
		if !ok {
			return fail(step, "%s should list a live binding %s tunnelled in UDP to a mapping of the NAT %s within %v; hactl show bindings %s says: %s",
				d.names[i], natHome, natPublic, replicaTimeout, natHome, oneLine(out, nil))
		}
		if mapping == "" {
			mapping = m
		} else if m != mapping {
			return fail(step, "%s's binding %s should carry %s's NAT mapping %s; it has %s", d.names[i], natHome, d.names[active], mapping, m)
		}
		d.detail("%s: binding %s → tunnel %s", d.names[i], natHome, tunnel)
	}
	d.natMap = mapping
	// The node's side of the data path: the correspondent behind the TUN.
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := vm.Exec(c, n.nodeNS, "ip", "route", "add", cn+"/32", "dev", natTun, "src", natHome); err != nil {
		return fail("NAT registration", "routing the correspondent through %s in %s: %s", natTun, n.nodeNS, oneLine(out, err))
	}
	return nil
}

// udpCounters reads the UDP tunnel counters of `hactl show stats` on guest i.
func (d *demo) udpCounters(ctx context.Context, i int, step string) (encap, decap int64, err error) {
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	out, _, err := d.guests[i].Run(c, "hactl show stats")
	cancel()
	out = vm.StripLogs(out)
	encap, decap = vm.Counter(out, "udp tunnel encapsulated"), vm.Counter(out, "udp tunnel decapsulated")
	if err != nil || encap < 0 || decap < 0 {
		return 0, 0, fail(step, "%s: hactl show stats should list the udp tunnel counters: %s", d.names[i], oneLine(out, err))
	}
	return encap, decap, nil
}

// udpStats lists the UDP tunnel counters of guest i that are not zero, for
// a failure message: which side of the tunnel the packets were lost on.
func (d *demo) udpStats(ctx context.Context, i int) string {
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	out, _, err := d.guests[i].Run(c, "hactl show stats")
	cancel()
	if err != nil {
		return "console: " + err.Error()
	}
	var s []string
	for _, l := range strings.Split(vm.StripLogs(out), "\n") {
		name := strings.TrimSpace(strings.TrimRight(strings.TrimSpace(l), "0123456789"))
		if strings.HasPrefix(name, "udp tunnel") {
			if v := vm.Counter(out, name); v > 0 {
				s = append(s, fmt.Sprintf("%s %d", name, v))
			}
		}
	}
	if len(s) == 0 {
		return "every udp tunnel counter 0"
	}
	return strings.Join(s, ", ")
}

var pingReceived = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// natPing pings the node's home address from the correspondent and
// requires every echo to come back, the requests tunnelled in UDP by guest
// by and the replies decapsulated by it: its counters move by the pings.
func (d *demo) natPing(ctx context.Context, step string, by int) error {
	name := d.names[by]
	e0, x0, err := d.udpCounters(ctx, by, step)
	if err != nil {
		return err
	}
	var out string
	var perr error
	seen, capErr := d.natCapture(ctx, func() {
		c, cancel := context.WithTimeout(ctx, natTimeout)
		out, perr = vm.Exec(c, d.cnNS, "ping", "-c", fmt.Sprint(natPings), "-W", "3", natHome)
		cancel()
	})
	m := pingReceived.FindStringSubmatch(out)
	if m == nil || m[2] != fmt.Sprint(natPings) {
		got := "no answer"
		if m != nil {
			got = m[2] + " of " + m[1] + " answered"
		} else if perr != nil {
			got = oneLine(out, perr)
		}
		return fail(step, "ping -c %d %s from the correspondent should be answered through %s and the NAT %s; %s. %s's hactl show stats: %s; the node's mnsim: %s",
			natPings, natHome, name, natPublic, got, name, d.udpStats(ctx, by), d.nat.stop())
	}
	e1, x1, err := d.udpCounters(ctx, by, step)
	if err != nil {
		return err
	}
	if e1-e0 < natPings || x1-x0 < natPings {
		return fail(step, "%s should have tunnelled the %d echo requests in UDP and decapsulated the %d replies; its counters moved by %d and %d (hactl show stats)",
			name, natPings, natPings, e1-e0, x1-x0)
	}
	if capErr != nil {
		return fail(step, "capturing at the NAT's address %s: %v", natPublic, capErr)
	}
	want := natFrame{src: vip + ":434", dst: d.natMap, eth: d.macs[by]}
	if seen != want {
		return fail(step, "tunnel data should reach the NAT from the virtual address %s, port 434, to the mapping %s, sent by %s (MAC %s); tshark at %s saw %s",
			vip, d.natMap, name, d.macs[by], natPublic, seen)
	}
	d.say("ping -c %d %s from the correspondent %s: %s/%s answered through the NAT", natPings, natHome, cn, m[2], m[1])
	d.detail("captured at the NAT: UDP %s → %s, Ethernet source %s (%s)", seen.src, seen.dst, seen.eth, name)
	d.detail("%s: udp tunnel encapsulated %d → %d, decapsulated %d → %d (hactl show stats)", name, e0, e1, x0, x1)
	return nil
}

// natAfterTakeover: the new active member reaches the node through the
// mapping the node opened with the old one, and the node did not register
// again.
func (d *demo) natAfterTakeover(ctx context.Context, by int) error {
	name := d.names[by]
	d.section("6c. the node behind NAT, through " + name + ", without registering again")
	m, tunnel, out, ok := d.natMapping(ctx, by, 0)
	if !ok || m != d.natMap {
		return fail("NAT after takeover", "%s should hold the binding %s with the NAT mapping %s the node registered from; hactl show bindings %s says: %s",
			name, natHome, d.natMap, natHome, oneLine(out, nil))
	}
	d.say("%s: binding %s → tunnel %s", name, natHome, tunnel)
	if err := d.natPing(ctx, "NAT after takeover", by); err != nil {
		return err
	}
	if got := strings.Count(d.nat.output(), "registered from "); got != 1 {
		return fail("NAT after takeover", "the node should have registered once, the failover needing no new registration; mnsim said: %s", oneLine(d.nat.output(), nil))
	}
	d.detail("the node registered once, with %s, before the failover (mnsim printed one \"registered from\")", d.names[1-by])
	return nil
}

// natStop ends the node's mnsim (SIGTERM: it prints its counters) and
// returns its last line.
func (n *natNode) stop() string {
	if n == nil || n.cmd == nil || n.cmd.Process == nil {
		return ""
	}
	select {
	case <-n.exited:
	default:
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(5 * time.Second):
			_ = n.cmd.Process.Kill()
			<-n.exited
		}
	}
	lines := strings.Split(strings.TrimSpace(n.output()), "\n")
	return lines[len(lines)-1]
}

// natFrame is the first tunnel packet the NAT received: outer UDP source
// and destination ("192.0.2.1:434") and Ethernet source.
type natFrame struct{ src, dst, eth string }

func (f natFrame) String() string {
	if f == (natFrame{}) {
		return "nothing"
	}
	return fmt.Sprintf("UDP %s → %s from MAC %s", f.src, f.dst, f.eth)
}

// natCapture listens with tshark on the NAT's LAN side for UDP from port
// 434 to the NAT's address while trigger runs, and returns the first such
// packet. Only the outer header is read: tshark decodes the tunnelled
// packet too, and its fields come after the outer ones.
func (d *demo) natCapture(ctx context.Context, trigger func()) (natFrame, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", d.nat.natNS, "tshark", "-i", "eth0", "-n", "-l",
		"-c", "1", "-a", "duration:15", "-f", "udp src port 434 and dst host "+natPublic,
		"-T", "fields", "-e", "ip.src", "-e", "udp.srcport", "-e", "ip.dst", "-e", "udp.dstport", "-e", "eth.src")
	var out, errb strings.Builder
	var mu sync.Mutex
	cmd.Stdout = &out
	cmd.Stderr = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return errb.Write(p) })
	if err := reap.Start(cmd); err != nil { // dies with the demo
		return natFrame{}, fmt.Errorf("tshark in %s: %w", d.nat.natNS, err)
	}
	// tshark prints "Capturing on" once its filter is in place.
	for i := 0; i < 100; i++ {
		mu.Lock()
		ready := strings.Contains(errb.String(), "Capturing on")
		mu.Unlock()
		if ready {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	trigger()
	err := cmd.Wait()
	if f, ok := parseNATFrame(out.String()); ok {
		return f, nil
	}
	if err != nil {
		mu.Lock()
		defer mu.Unlock()
		return natFrame{}, fmt.Errorf("tshark in %s: %v: %s", d.nat.natNS, err, strings.TrimSpace(errb.String()))
	}
	return natFrame{}, nil
}

// parseNATFrame reads the first line natCapture's tshark printed: ip.src,
// udp.srcport, ip.dst, udp.dstport, eth.src, tab-separated, each field
// listing the outer header's value first (and the tunnelled packet's after
// a comma, when tshark decodes it).
func parseNATFrame(out string) (natFrame, bool) {
	first := func(s string) string { v, _, _ := strings.Cut(strings.TrimSpace(s), ","); return v }
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Split(l, "\t"); len(f) >= 5 {
			return natFrame{src: first(f[0]) + ":" + first(f[1]), dst: first(f[2]) + ":" + first(f[3]), eth: first(f[4])}, true
		}
	}
	return natFrame{}, false
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
