// Command demo is `make demo`: it builds the default board's firmware image,
// boots two Home Agent guests on a LAN it makes (a bridge in a network
// namespace), waits for the VRRP election, registers a mobile node from its
// own namespace to the virtual address, checks that the binding replicated
// to the standby, that a correspondent's packet arrives tunnelled at the
// care-of address, kills the active guest and checks that the other one
// takes over with the binding, answers the node's renewal itself (its
// counters, and the node's ARP entry for the virtual address on its MAC) and
// tunnels from its own MAC. Beside the plain node, a node behind a
// masquerading router (nat.go) registers with RFC 3519 UDP tunnelling; the
// correspondent reaches it through the NAT, and after the failover through
// the new active member with no new registration; likewise a mobile router
// (mobilenet.go) with two networks behind it, a host in each reached
// before and after the failover. Then it removes
// everything it made (guests by PID, namespaces, taps). Run it as root.
//
// Every step is a check: the first one that does not hold ends the demo with
// "FAILED: <step>: <what was expected, what was seen>" and exit status 1.
// By default it prints only what proves each step; -v (or
// HAGENT_DEMO_VERBOSE=1, `make demo V=1`) also prints the image build and
// both guests' whole consoles (agent logs and every hactl answer).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hagent/hagent/firmware/board"
	"github.com/hagent/hagent/firmware/vm"
	"github.com/hagent/hagent/tools/lab/reap"
)

const (
	haA, haB = "192.0.2.2", "192.0.2.3"
	vip      = "192.0.2.1"
	home     = "192.0.2.10"
	coa      = "198.51.100.7"
	cn       = "192.0.2.100"
	spi      = "256"
	keyHex   = "00112233445566778899aabbccddeeff"

	readyLine   = `msg="hagent ready"`
	bootTimeout = 3 * time.Minute
	// The election takes about 4 s after "hagent ready" (electionHint);
	// allow for a loaded 2-core machine.
	electionTimeout = 30 * time.Second
	// The standby takes over 3 advertisement intervals plus its skew after
	// the last advertisement, about 3.6 s with the reference config.
	takeoverTimeout = 20 * time.Second
	// With ack_before_reply the standby has acknowledged the binding
	// update before the node's reply leaves, except for the very first
	// update to a peer that has never acknowledged one: allow a moment.
	replicaTimeout = 10 * time.Second
)

// electionHint is printed while waiting. Each agent first asks the group
// for its binding table (3 requests 1 s apart before the lowest-numbered
// member decides it is alone) and meanwhile VRRP, held at priority 1, waits
// three advertisement intervals (1 s) plus its skew. In the guests' logs
// "hagent ready" → "role change ... to=active" took 4.1 s on the 2-core
// build machine; the demo sees it a second or so later through its polls.
const electionHint = "about 5 s: each agent first asks the group for its binding table, then VRRP waits three advertisement intervals"

func main() {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	boardName := fs.String("board", "qemu-arm64", "board under board/")
	verbose := fs.Bool("v", os.Getenv("HAGENT_DEMO_VERBOSE") == "1",
		"print everything: the image build and both guests' consoles, with the agents' logs and hactl's whole answers (also HAGENT_DEMO_VERBOSE=1)")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: go run ./firmware/cmd/demo [-board NAME] [-v]   (make demo [BOARD=NAME] [V=1]; as root)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "demo: unexpected argument %q (flags only; -h lists them)\n", fs.Arg(0))
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{board: *boardName, out: os.Stdout, verbose: *verbose, start: time.Now()}
	err := d.run(ctx)
	if err != nil && !d.verbose {
		d.consoleTails()
	}
	if cerr := d.cleanup(); cerr != nil && err == nil {
		err = fail("clean up", "%v: remove them with ip netns del", cerr)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAILED: %v\n", err)
		if !d.verbose {
			fmt.Fprintln(os.Stderr, "(make demo V=1, or -v, prints the image build and both guests' whole consoles)")
		}
		os.Exit(1)
	}
	d.say("done in %v: election, registration, replication, tunnel, takeover with the binding, the renewal answered and the tunnel sent by the new active member, the node behind NAT and the mobile networks reached through it with no new registration; everything the demo made is removed",
		time.Since(d.start).Round(time.Second))
}

// failure is a step that did not hold: "<step>: <expected, seen>".
type failure struct{ step, what string }

func (f *failure) Error() string { return f.step + ": " + f.what }

func fail(step, format string, args ...any) error {
	return &failure{step, fmt.Sprintf(format, args...)}
}

type demo struct {
	board      string
	out        io.Writer
	verbose    bool
	start      time.Time
	img        vm.Image
	lab        *vm.Lab
	guests     []*vm.Machine
	names      []string
	macs       []string // each guest's MAC on the LAN
	mnNS, cnNS string
	mnsim      string
	tmp        string
	nat        *natNode // the node behind NAT
	mr         *vm.MobileRouter
	mrID       string // the identification of the mobile router's one registration
	natMap     string // its NAT mapping, as the first member recorded it
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "[%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

// detail prints indented lines under the last say (the evidence of a step).
func (d *demo) detail(format string, args ...any) {
	fmt.Fprintf(d.out, "         %s\n", fmt.Sprintf(format, args...))
}

func (d *demo) section(title string) { fmt.Fprintf(d.out, "\n==== %s ====\n", title) }

// progress prints a line every 15 s until done is closed: a cold build or
// a boot under TCG on a busy machine is slow, and silence looks like a hang.
func (d *demo) progress(what string, done <-chan struct{}) {
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	begin := time.Now()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			d.say("  ... %s (%v)", what, time.Since(begin).Round(time.Second))
		}
	}
}

func (d *demo) run(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return fail("setup", "run as root (sudo make demo): the demo makes network namespaces, a bridge and tap devices")
	}
	root, err := vm.Root()
	if err != nil {
		return fail("setup", "%v", err)
	}
	if d.tmp, err = reap.TempDir("hagent-demo"); err != nil { // a killed demo's goes with the next one
		return fail("setup", "%v", err)
	}
	if err := d.build(ctx, root); err != nil {
		return err
	}
	if err := d.boot(ctx); err != nil {
		return err
	}
	active, standby, err := d.election(ctx)
	if err != nil {
		return err
	}
	if err := d.register(ctx, active, standby); err != nil {
		return err
	}
	if err := d.natRegister(ctx, active, standby); err != nil {
		return err
	}
	if err := d.mnRegister(ctx, active, standby); err != nil {
		return err
	}

	d.section("5. a packet from the correspondent, tunnelled to the care-of address")
	if err := d.tunnel(ctx, "tunnel", active); err != nil {
		return err
	}
	d.section("5b. a ping to the node behind NAT, tunnelled in UDP to its NAT mapping")
	if err := d.natPing(ctx, "NAT tunnel", active); err != nil {
		return err
	}
	d.section("5c. a ping into the mobile networks, tunnelled IP-in-IP to the router")
	if err := d.mnPing(ctx, "mobile network", active); err != nil {
		return err
	}

	if err := d.takeover(ctx, active, standby); err != nil {
		return err
	}
	if err := d.renewal(ctx, standby); err != nil {
		return err
	}
	if err := d.tunnel(ctx, "tunnel after takeover", standby); err != nil {
		return err
	}
	if err := d.natAfterTakeover(ctx, standby); err != nil {
		return err
	}
	if err := d.mnAfterTakeover(ctx, standby); err != nil {
		return err
	}

	d.section("7. clean up")
	d.say("mnsim behind the NAT, %s", d.nat.stop())
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := d.guests[standby].Poweroff(c); err != nil {
		return fail("power off", "%s: hainit -poweroff should stop the agent and QEMU should exit 0: %v", d.names[standby], err)
	}
	d.say("%s: hainit -poweroff: agent stopped, QEMU exited 0", d.names[standby])
	return nil
}

func (d *demo) build(ctx context.Context, root string) error {
	d.section("1. the firmware image (" + d.board + ")")
	bd, err := board.Load(filepath.Join(root, "board", d.board))
	if err != nil {
		return fail("build", "%v", err)
	}
	// One line that says what will happen: mkimage.sh downloads the kernel
	// only when cache/kernel has none for this architecture.
	kcache := filepath.Join("cache", "kernel", bd.DebArch, bd.KernelPkg)
	if _, err := os.Stat(filepath.Join(root, kcache, "kver")); err == nil && os.Getenv("HAGENT_KERNEL_REFRESH") != "1" {
		d.say("firmware/mkimage.sh %s: Debian kernel from %s/, u-root busybox with hagent, hactl, hainit", d.board, kcache)
	} else {
		d.say("firmware/mkimage.sh %s: downloading the Debian kernel %s:%s once into %s/, then u-root busybox with hagent, hactl, hainit",
			d.board, bd.KernelPkg, bd.DebArch, kcache)
	}
	var log strings.Builder
	w := io.Writer(&log)
	if d.verbose {
		w = io.MultiWriter(&log, &prefixed{w: d.out, prefix: "    "})
	}
	done := make(chan struct{})
	go d.progress("building", done)
	t0 := time.Now()
	img, err := buildImage(ctx, root, d.board, w)
	close(done)
	if err != nil {
		return fail("build", "%v", err)
	}
	rel, _ := filepath.Rel(root, img.Initrd)
	if strings.Contains(log.String(), "up to date:") {
		d.say("image up to date (inputs unchanged): %s, cpio %d KiB, xz %d KiB", rel, img.CPIOBytes/1024, img.XZBytes/1024)
	} else {
		d.say("image built in %v: %s, cpio %d KiB, xz %d KiB", time.Since(t0).Round(100*time.Millisecond), rel, img.CPIOBytes/1024, img.XZBytes/1024)
	}
	d.mnsim = filepath.Join(d.tmp, "mnsim")
	if out, err := exec.CommandContext(ctx, "go", "build", "-C", root, "-o", d.mnsim, "./tools/mnsim").CombinedOutput(); err != nil {
		return fail("build", "go build ./tools/mnsim: %v\n%s", err, out)
	}
	d.img = img
	return nil
}

func (d *demo) boot(ctx context.Context) error {
	d.section("2. the LAN: bridge, two Home Agent guests, a mobile node, a correspondent, a node behind NAT, a mobile router")
	var err error
	if d.lab, err = vm.NewLab(ctx, vm.LabPrefix()); err != nil {
		return fail("setup", "%v", err)
	}
	d.say("namespace %s: bridge br0 (multicast snooping off)", d.lab.Netns)
	// The virtual address on-link: the node's requests go to whichever
	// member its ARP cache says holds it, which is what the renewal after
	// the failover checks (a route via one member's foreign address would
	// pick the member for it).
	if d.mnNS, err = d.lab.AddHost(ctx, "mn", []string{coa + "/24"},
		[][]string{{vip + "/32", "dev", "eth0"}, {"192.0.2.0/24", "via", "198.51.100.2"}}); err != nil {
		return fail("setup", "%v", err)
	}
	d.say("namespace %s: mobile node, care-of address %s", d.mnNS, coa)
	if d.cnNS, err = d.lab.AddHost(ctx, "cn", []string{cn + "/24"}, nil); err != nil {
		return fail("setup", "%v", err)
	}
	d.say("namespace %s: correspondent %s", d.cnNS, cn)
	if err := d.natLAN(ctx); err != nil {
		return err
	}
	if err := d.mnLAN(ctx); err != nil {
		return err
	}
	type g struct{ name, addr, foreign, cfg, file string }
	for i, gg := range []g{
		{"ha1", haA, "198.51.100.2/24", "", "/etc/hagent.toml, VRRP priority 200"},
		{"ha2", haB, "198.51.100.3/24", "hagent.config=/etc/hagent-b.toml", "/etc/hagent-b.toml, VRRP priority 100"},
	} {
		tap, err := d.lab.AddTap(ctx)
		if err != nil {
			return fail("setup", "%v", err)
		}
		app := []string{"hagent.ip=eth0:" + gg.addr + "/24,eth0:" + gg.foreign, "hagent.hostname=" + gg.name}
		app = append(app, noRedirects...)
		if gg.cfg != "" {
			app = append(app, gg.cfg)
		}
		var log io.Writer
		if d.verbose {
			log = &prefixed{w: d.out, prefix: gg.name + "| "}
		}
		mac := fmt.Sprintf("52:54:00:4a:00:%02x", i+1)
		m, err := vm.Start(ctx, vm.Options{Image: d.img, Name: gg.name, Netns: d.lab.Netns, Append: app,
			NICs: []vm.NIC{vm.TapNIC(tap, mac)}, Log: log})
		if err != nil {
			return fail("boot", "%s: %v", gg.name, err)
		}
		d.guests = append(d.guests, m)
		d.names = append(d.names, gg.name)
		d.macs = append(d.macs, mac)
		d.say("%s: QEMU pid %d booting (%s, MAC %s, %s)", gg.name, m.PID(), gg.addr, mac, gg.file)
	}
	done := make(chan struct{})
	defer close(done)
	go d.progress("booting two guests under TCG", done)
	for i, m := range d.guests {
		c, cancel := context.WithTimeout(ctx, bootTimeout)
		_, err := m.ExpectAny(c, readyLine)
		cancel()
		if err != nil {
			return fail("boot", "%s should log %s within %v: %v", d.names[i], readyLine, bootTimeout, err)
		}
		d.say("%s: hagent ready", d.names[i])
	}
	return nil
}

// election waits until exactly one guest is active and returns the indexes
// of the active and the standby one. With the group configs ha1 (priority
// 200, preempt) must win; ha2 may be master for a moment first when it
// finishes its table download earlier, so the wait is for the settled state.
func (d *demo) election(ctx context.Context) (active, standby int, err error) {
	d.section("3. the VRRP election")
	d.say("waiting for the VRRP election (%s)", electionHint)
	t0 := time.Now()
	deadline := t0.Add(electionTimeout)
	var roles [2]string
	var outs [2]string
	for {
		// ha2 only once ha1 is active: each console round trip takes a
		// while under TCG, and the wait should end soon after the election.
		roles[0], outs[0] = d.role(ctx, d.guests[0])
		late := ctx.Err() != nil || time.Now().After(deadline)
		if vm.IsActive(roles[0]) || late {
			roles[1], outs[1] = d.role(ctx, d.guests[1])
		}
		if vm.IsActive(roles[0]) && strings.HasPrefix(roles[1], "standby") {
			break
		}
		if late {
			return 0, 0, fail("election", "ha1 (VRRP priority 200) should be active and ha2 (priority 100) standby within %v; hactl show redundancy says ha1 %s, ha2 %s",
				electionTimeout, describeRole(roles[0], outs[0]), describeRole(roles[1], outs[1]))
		}
		time.Sleep(500 * time.Millisecond)
	}
	d.say("elected after %.1f s:", time.Since(t0).Seconds())
	for i := range d.guests {
		d.detail("%s: %s", d.names[i], roleWhy(roles[i], outs[i]))
	}
	return 0, 1, nil
}

// role asks m for `hactl show redundancy` and returns the role line and the
// output without log lines.
func (d *demo) role(ctx context.Context, m *vm.Machine) (string, string) {
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, _, err := m.Run(c, "hactl show redundancy")
	if err != nil {
		return "", "console: " + err.Error()
	}
	out = vm.StripLogs(out)
	return vm.Role(out), out
}

// roleWhy is "active (vrrp Master): master down timer expired ...": the
// role line and the reason line of `hactl show redundancy`.
func roleWhy(role, out string) string {
	if r := vm.Field(out, "reason"); r != "" && r != "-" {
		return role + ": " + r
	}
	return role
}

// describeRole is "role X" or, without a role line, what hactl said instead.
func describeRole(role, out string) string {
	if role != "" {
		return "role " + role
	}
	first, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	if first == "" {
		first = "nothing"
	}
	return "no role (" + first + ")"
}

func (d *demo) register(ctx context.Context, active, standby int) error {
	d.section("4. registration to the virtual address " + vip + ", replicated to the standby")
	c, cancel := context.WithTimeout(ctx, 15*time.Second)
	// -retries: a mobile node retransmits a request that got no reply
	// (RFC 5944 §3.6.3); after the election one attempt is expected.
	out, err := vm.Exec(c, d.mnNS, d.mnsim, "register", "-ha", vip, "-home", home, "-coa", coa,
		"-spi", spi, "-key-hex", keyHex, "-timeout", "2s", "-retries", "2")
	cancel()
	out = strings.TrimSpace(out)
	if err != nil {
		return fail("registration", "mnsim register -ha %s should be accepted by %s (active): %s", vip, d.names[active], oneLine(out, err))
	}
	d.say("mnsim register -ha %s -home %s -coa %s: %s", vip, home, coa, out)
	for _, i := range []int{active, standby} {
		step := "registration"
		if i == standby {
			step = "replication"
		}
		row, out, ok := d.binding(ctx, d.guests[i], replicaTimeout)
		if !ok {
			return fail(step, "%s should list a live binding %s → %s within %v; hactl show bindings %s says: %s",
				d.names[i], home, coa, replicaTimeout, home, oneLine(out, nil))
		}
		d.detail("%s: binding %s", d.names[i], row)
	}
	// The group protocol's evidence: the update and its acknowledgement.
	for _, x := range []struct {
		i     int
		names []string
	}{
		{active, []string{"binding updates/sent", "binding updates/acks received", "binding updates/failed (no ack)"}},
		{standby, []string{"binding updates/received", "binding updates/acks sent"}},
	} {
		_, out := d.role(ctx, d.guests[x.i])
		if s := nonZero(out, x.names...); s != "" {
			d.detail("%s: %s", d.names[x.i], s)
		}
	}
	return nil
}

// binding polls `hactl show bindings HOME` on m until it lists a live
// binding to the care-of address; it returns the row, described.
func (d *demo) binding(ctx context.Context, m *vm.Machine, within time.Duration) (string, string, bool) {
	deadline := time.Now().Add(within)
	for {
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		out, _, err := m.Run(c, "hactl show bindings "+home)
		cancel()
		if err != nil {
			out = "console: " + err.Error()
		}
		out = vm.StripLogs(out)
		if _, f, ok := vm.BindingRow(out, home); ok && f[1] == coa && f[3] == "live" {
			return describeBinding(f), out, true
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return "", out, false
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// describeBinding turns a `hactl show bindings` row into one readable line.
func describeBinding(f []string) string {
	if len(f) < 9 {
		return strings.Join(f, " ")
	}
	// HOME CARE-OF HOME-AGENT STATE GRANTED REMAINING FLAGS IDENTIFICATION NODE
	return fmt.Sprintf("%s → care-of %s, %s, lifetime %s (%s left), node %s", f[0], f[1], f[3], f[4], f[5], f[8])
}

// nonZero lists "name N" for the named counters that are not zero.
func nonZero(out string, names ...string) string {
	var s []string
	for _, n := range names {
		if v := vm.Counter(out, n); v > 0 {
			s = append(s, fmt.Sprintf("%s %d", n, v))
		}
	}
	return strings.Join(s, ", ")
}

// tunnel pings the home address from the correspondent and requires the
// echo request to arrive at the care-of address inside an IP-in-IP packet
// sent from guest by's MAC.
func (d *demo) tunnel(ctx context.Context, step string, by int) error {
	ok, out, err := vm.CaptureTunnel(ctx, d.mnNS, coa, home, func() {
		c, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		_, _ = vm.Exec(c, d.cnNS, "ping", "-c", "3", "-W", "1", home)
	})
	if err != nil {
		return fail(step, "capturing at the care-of address: %v", err)
	}
	t, parsed := vm.ParseTunnelled(out, coa, home)
	if !ok || !parsed {
		seen := "nothing"
		if out != "" {
			seen = strings.ReplaceAll(out, "\n", "; ")
		}
		return fail(step, "ping %s from %s should arrive tunnelled at the care-of address %s within 15s; tshark there saw %s",
			home, cn, coa, seen)
	}
	d.say("ping %s from the correspondent %s, captured at the care-of address %s:", home, cn, coa)
	d.detail("%s", t)
	if t.Proto != "4" {
		return fail(step, "the node registered without the G bit, so the tunnel should be IP-in-IP (protocol 4); it is %s", t)
	}
	if t.EthSrc != d.macs[by] {
		return fail(step, "the tunnelled packet should come from %s (MAC %s, active); its Ethernet source is %q", d.names[by], d.macs[by], t.EthSrc)
	}
	d.detail("tunnelled by %s: Ethernet source %s", d.names[by], t.EthSrc)
	return nil
}

// renewal renews the node's binding on the virtual address after the
// failover and proves that the new active member answered it, not only that
// something did: its own renewal counter moves, and the node's ARP entry for
// the virtual address is that member's MAC.
func (d *demo) renewal(ctx context.Context, by int) error {
	name := d.names[by]
	d.section("6b. the node renews on " + vip + ": answered by " + name)
	before, err := d.renewals(ctx, by)
	if err != nil {
		return err
	}
	c, cancel := context.WithTimeout(ctx, 15*time.Second)
	out, err := vm.Exec(c, d.mnNS, d.mnsim, "register", "-ha", vip, "-home", home, "-coa", coa,
		"-spi", spi, "-key-hex", keyHex, "-timeout", "2s", "-retries", "2")
	cancel()
	out = strings.TrimSpace(out)
	if err != nil {
		return fail("renewal", "mnsim register -ha %s (a renewal) should be accepted by %s (active): %s", vip, name, oneLine(out, err))
	}
	d.say("mnsim register -ha %s -home %s -coa %s: %s", vip, home, coa, out)
	after, err := d.renewals(ctx, by)
	if err != nil {
		return err
	}
	if after <= before {
		return fail("renewal", "%s's renewal counter (hactl show stats) should have moved past %d; it is %d: someone else answered", name, before, after)
	}
	c, cancel = context.WithTimeout(ctx, 10*time.Second)
	neigh, err := vm.Exec(c, d.mnNS, "ip", "neigh", "show", vip, "dev", "eth0")
	cancel()
	mac := ""
	if f := strings.Fields(neigh); err == nil {
		for i := range f {
			if f[i] == "lladdr" && i+1 < len(f) {
				mac = f[i+1]
			}
		}
	}
	if mac != d.macs[by] {
		return fail("renewal", "the node's ARP entry for %s should be %s's MAC %s; ip neigh says %s", vip, name, d.macs[by], oneLine(neigh, err))
	}
	d.detail("%s: renewals %d → %d (hactl show stats)", name, before, after)
	d.detail("the node's ARP entry for %s: %s (%s)", vip, mac, name)
	return nil
}

// renewals reads the "renewals" counter of `hactl show stats` on guest i.
func (d *demo) renewals(ctx context.Context, i int) (int64, error) {
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	out, _, err := d.guests[i].Run(c, "hactl show stats")
	cancel()
	out = vm.StripLogs(out)
	v := vm.Counter(out, "renewals")
	if err != nil || v < 0 {
		return 0, fail("renewal", "%s: hactl show stats should list a renewals counter: %s", d.names[i], oneLine(out, err))
	}
	return v, nil
}

func (d *demo) takeover(ctx context.Context, active, standby int) error {
	a, s := d.names[active], d.names[standby]
	d.section("6. failover: " + a + "'s QEMU is killed")
	d.say("kill -9 %d (%s, the active Home Agent)", d.guests[active].PID(), a)
	t0 := time.Now()
	d.guests[active].Kill()
	deadline := t0.Add(takeoverTimeout)
	var role, out string
	for {
		role, out = d.role(ctx, d.guests[standby])
		if vm.IsActive(role) {
			break
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fail("takeover", "%s did not become active within %v (hactl show redundancy says %s)", s, takeoverTimeout, describeRole(role, out))
		}
		time.Sleep(250 * time.Millisecond)
	}
	d.say("%s took over %.1f s after the kill:", s, time.Since(t0).Seconds())
	d.detail("%s: %s", s, roleWhy(role, out))
	row, bout, ok := d.binding(ctx, d.guests[standby], 0)
	if !ok {
		return fail("takeover", "%s is active but lists no live binding %s → %s (hactl show bindings %s says: %s)", s, home, coa, home, oneLine(bout, nil))
	}
	d.detail("%s: binding %s", s, row)
	return nil
}

// consoleTails prints the last log lines of each guest's console after a
// failure: the agent's log usually says why. hactl's answers to the demo's
// polls are left out; -v shows the whole consoles.
func (d *demo) consoleTails() {
	for i, m := range d.guests {
		var logs []string
		for _, l := range strings.Split(m.Output(), "\n") {
			if vm.IsLogLine(l) {
				logs = append(logs, strings.TrimPrefix(strings.TrimSpace(l), "$ "))
			}
		}
		if len(logs) > 10 {
			logs = logs[len(logs)-10:]
		}
		fmt.Fprintf(d.out, "---- last log lines of %s's console ----\n", d.names[i])
		for _, l := range logs {
			fmt.Fprintf(d.out, "%s| %s\n", d.names[i], l)
		}
	}
}

func oneLine(out string, err error) string {
	s := strings.Join(strings.Fields(out), " ")
	if s == "" && err != nil {
		s = err.Error()
	}
	if s == "" {
		s = "nothing"
	}
	return s
}

// cleanup runs on success, failure and Ctrl-C: guests by PID, then the lab.
func (d *demo) cleanup() error {
	d.nat.stop()
	_ = d.mr.Close()
	for i, m := range d.guests {
		if !m.Exited() {
			d.say("killing QEMU pid %d (%s)", m.PID(), d.names[i])
			m.Kill()
		}
	}
	if d.tmp != "" {
		_ = os.RemoveAll(d.tmp)
	}
	if d.lab != nil {
		if err := d.lab.Close(); err != nil {
			return err
		}
		d.say("removed namespaces %s-*", d.lab.Prefix)
	}
	return nil
}

// prefixed writes each whole line with a prefix (build output, consoles
// under -v); a console delivers lines in arbitrary chunks, so the part
// after the last newline waits for the rest.
type prefixed struct {
	w       io.Writer
	prefix  string
	partial []byte
}

func (p *prefixed) Write(b []byte) (int, error) {
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		l := string(p.partial[:i])
		p.partial = p.partial[i+1:]
		if strings.Contains(l, "depmod: WARNING") || strings.TrimSpace(l) == "" {
			continue
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, l)
	}
}
