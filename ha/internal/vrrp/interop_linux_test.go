//go:build linux

package vrrp

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// need skips (or, under HAGENT_TEST_STRICT=1, fails) when a prerequisite is
// missing.
func need(t *testing.T, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("HAGENT_TEST_STRICT") == "1" {
		t.Fatal("prerequisite missing: " + why)
	}
	t.Skip("prerequisite missing: " + why)
}

func have(bin string) bool { _, err := exec.LookPath(bin); return err == nil }

// TestHelperVRRPRunner is not a test: the interop test runs the test binary
// inside a network namespace with HAGENT_VRRP_HELPER=1 to get a runner there.
// It prints one line per role change and resigns on SIGTERM.
func TestHelperVRRPRunner(t *testing.T) {
	if os.Getenv("HAGENT_VRRP_HELPER") != "1" {
		t.Skip("helper process for TestInteropKeepalived")
	}
	prio, _ := strconv.Atoi(os.Getenv("PRIO"))
	iv, _ := time.ParseDuration(os.Getenv("INTERVAL"))
	r, err := NewRunner(RunnerConfig{Interface: os.Getenv("IF"), PrefixLen: 24, Machine: Config{
		VRID: 51, Priority: uint8(prio), AdvertInterval: iv, Preempt: true, AcceptMode: true,
		Addrs: []netip.Addr{netip.MustParseAddr(os.Getenv("VIP"))}, GARPCount: 2}})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	if os.Getenv("HOLD") == "1" {
		r.SetHold(true) // before Run: must not even start as master
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		for c := range r.Changes() {
			fmt.Printf("ROLE %s %s %s\n", c.Role, c.State, c.Reason)
		}
	}()
	if err := r.Run(ctx); err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	st := r.Stats()
	fmt.Printf("STATS %+v\n", st)
	os.Exit(0)
}

type lab struct {
	t      *testing.T
	suffix string
	dir    string
}

func (l *lab) ns(n string) string { return "hv" + n + l.suffix }

func (l *lab) run(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newLab: namespaces A (hagent) and K (keepalived) on a bridge in namespace
// B with multicast snooping off; everything is removed on cleanup.
func newLab(t *testing.T) *lab {
	need(t, os.Geteuid() == 0, "root (network namespaces)")
	need(t, have("ip"), "iproute2")
	l := &lab{t: t, suffix: fmt.Sprintf("%d", os.Getpid()%100000), dir: t.TempDir()}
	for _, n := range []string{"B", "A", "K"} {
		l.run("ip", "netns", "add", l.ns(n))
		ns := l.ns(n)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	b := l.ns("B")
	l.run("ip", "-n", b, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	l.run("ip", "-n", b, "link", "set", "br0", "up")
	for i, n := range []string{"A", "K"} {
		port := "p" + n
		l.run("ip", "-n", b, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", l.ns(n))
		l.run("ip", "-n", b, "link", "set", port, "master", "br0", "up")
		l.run("ip", "-n", l.ns(n), "addr", "add", fmt.Sprintf("10.77.0.%d/24", i+1), "dev", "eth0")
		l.run("ip", "-n", l.ns(n), "link", "set", "eth0", "up")
		l.run("ip", "-n", l.ns(n), "link", "set", "lo", "up")
	}
	return l
}

func (l *lab) holds(n string) bool {
	out, _ := exec.Command("ip", "-n", l.ns(n), "-4", "addr", "show", "dev", "eth0").CombinedOutput()
	return strings.Contains(string(out), " 10.77.0.100/")
}

// waitHolder waits until exactly `who` holds the VIP, returns how long it took.
func (l *lab) waitHolder(who string, within time.Duration) time.Duration {
	l.t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		a, k := l.holds("A"), l.holds("K")
		if (who == "A" && a && !k) || (who == "K" && k && !a) {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	l.t.Fatalf("after %v: want only %s to hold 10.77.0.100; A=%v K=%v", within, who, l.holds("A"), l.holds("K"))
	return 0
}

// stable asserts that exactly `who` keeps the VIP for d (never both).
func (l *lab) stable(who string, d time.Duration) {
	l.t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		a, k := l.holds("A"), l.holds("K")
		if (who == "A") != a || (who == "K") != k {
			l.t.Fatalf("want only %s to hold the VIP: A=%v K=%v", who, a, k)
		}
	}
}

type proc struct {
	cmd  *exec.Cmd
	name string
}

func (l *lab) hagent(prio int, env ...string) *proc {
	l.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", l.ns("A"), os.Args[0], "-test.run=^TestHelperVRRPRunner$", "-test.v")
	cmd.Env = append(os.Environ(), "HAGENT_VRRP_HELPER=1", "IF=eth0", "VIP=10.77.0.100",
		"INTERVAL=100ms", "PRIO="+strconv.Itoa(prio))
	cmd.Env = append(cmd.Env, env...)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	p := &proc{cmd: cmd, name: "hagent"}
	l.t.Cleanup(func() { p.kill(syscall.SIGKILL) })
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			l.t.Logf("hagent(prio %d): %s", prio, s.Text())
		}
	}()
	return p
}

func (p *proc) kill(sig syscall.Signal) {
	if p.cmd.Process == nil || p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(sig)
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		p.cmd.Wait()
	}
}

// ip netns exec execs the test binary in place, so the pid is the helper's.

type keepalived struct {
	cmd              *exec.Cmd
	pidfile, vrrppid string
}

func (l *lab) keepalived(prio int) *keepalived {
	l.t.Helper()
	conf := filepath.Join(l.dir, "keepalived.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`global_defs {
  router_id hvk
  vrrp_version 3
}
vrrp_instance VI {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority %d
  advert_int 0.1
  virtual_ipaddress {
    10.77.0.100/24 dev eth0
  }
}
`, prio)), 0o644)
	k := &keepalived{pidfile: filepath.Join(l.dir, "k.pid"), vrrppid: filepath.Join(l.dir, "k-vrrp.pid")}
	os.Remove(k.pidfile)
	os.Remove(k.vrrppid)
	k.cmd = exec.Command("ip", "netns", "exec", l.ns("K"), "keepalived", "-n", "-l", "-D", "-P",
		"-f", conf, "-p", k.pidfile, "-r", k.vrrppid)
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, _ := os.OpenFile(filepath.Join(l.dir, "keepalived.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	k.cmd.Stdout, k.cmd.Stderr = logf, logf
	if err := k.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { k.crash() })
	// Wait until its VRRP child runs (it writes its pid file when started),
	// so timings measure the protocol, not keepalived's start-up.
	for end := time.Now().Add(5 * time.Second); readPid(k.vrrppid) == 0 && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	return k
}

func readPid(f string) int {
	b, _ := os.ReadFile(f)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// crash models a crash as the notes say: SIGKILL the VRRP child, then the
// parent (killing the parent alone makes the child resign gracefully).
func (k *keepalived) crash() {
	if k.cmd.ProcessState != nil {
		return
	}
	if pid := readPid(k.vrrppid); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	k.cmd.Process.Kill()
	k.cmd.Wait()
}

func (k *keepalived) stop() {
	k.cmd.Process.Signal(syscall.SIGTERM)
	k.cmd.Wait()
}

func TestInteropKeepalived(t *testing.T) {
	if testing.Short() {
		t.Skip("netns interop test (not in -short)")
	}
	need(t, have("keepalived"), "keepalived (apt-get install keepalived)")
	l := newLab(t)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(l.dir, "keepalived.log"))
			t.Logf("keepalived log:\n%s", b)
		}
	})
	tsharkOK := have("tshark")
	var tshark *exec.Cmd
	pcap := filepath.Join(l.dir, "vrrp.pcap")
	if tsharkOK {
		tshark = exec.Command("ip", "netns", "exec", l.ns("B"), "tshark", "-q", "-i", "br0", "-f", "ip proto 112", "-w", pcap)
		tshark.Start()
		time.Sleep(time.Second) // tshark takes a while to start capturing
	}

	// hagent 200 vs keepalived 100: hagent wins.
	h := l.hagent(200)
	k := l.keepalived(100)
	l.waitHolder("A", 3*time.Second)
	l.stable("A", 500*time.Millisecond)

	// Graceful stop of hagent (priority 0): keepalived takes over after skew.
	h.kill(syscall.SIGTERM)
	t.Logf("hagent graceful stop → keepalived holds the VIP after %v", l.waitHolder("K", 2*time.Second))
	l.stable("K", 300*time.Millisecond)

	// hagent comes back and preempts.
	h = l.hagent(200)
	t.Logf("hagent restart → preempts after %v", l.waitHolder("A", 3*time.Second))
	l.stable("A", 300*time.Millisecond)

	// Crash of hagent: keepalived takes over after Master_Down_Interval.
	h.kill(syscall.SIGKILL)
	start := time.Now()
	for !l.holds("K") && time.Since(start) < 2*time.Second {
		time.Sleep(5 * time.Millisecond)
	}
	if !l.holds("K") {
		t.Fatal("keepalived did not take over after hagent crashed")
	}
	t.Logf("hagent crash → keepalived holds the VIP after %v", time.Since(start))
	// The dead process left the address in its kernel (as keepalived does);
	// the restarted runner clears it first, then preempts.
	h = l.hagent(200)
	l.waitHolder("A", 3*time.Second)
	l.stable("A", 300*time.Millisecond)
	h.kill(syscall.SIGTERM)
	k.stop()

	// The other way round: keepalived 200 vs hagent 100.
	k = l.keepalived(200)
	l.waitHolder("K", 3*time.Second)
	// Held (table not yet downloaded), a higher priority must not preempt.
	h = l.hagent(250, "HOLD=1")
	l.stable("K", time.Second)
	h.kill(syscall.SIGTERM)
	h = l.hagent(100)
	l.stable("K", 500*time.Millisecond)

	// keepalived crash: hagent takes over; remove the dead one's address as
	// a link-down would.
	k.crash()
	start = time.Now()
	for !l.holds("A") && time.Since(start) < 2*time.Second {
		time.Sleep(5 * time.Millisecond)
	}
	if !l.holds("A") {
		t.Fatal("hagent did not take over after keepalived crashed")
	}
	t.Logf("keepalived crash → hagent holds the VIP after %v", time.Since(start))
	l.run("ip", "-n", l.ns("K"), "addr", "del", "10.77.0.100/24", "dev", "eth0")
	l.stable("A", 300*time.Millisecond)

	// keepalived restarts and preempts; then stops gracefully.
	k = l.keepalived(200)
	t.Logf("keepalived restart → preempts after %v", l.waitHolder("K", 3*time.Second))
	l.stable("K", 300*time.Millisecond)
	k.stop()
	t.Logf("keepalived graceful stop → hagent holds the VIP after %v", l.waitHolder("A", 2*time.Second))
	l.stable("A", 300*time.Millisecond)
	h.kill(syscall.SIGTERM)

	if tsharkOK {
		time.Sleep(300 * time.Millisecond)
		tshark.Process.Signal(syscall.SIGINT)
		tshark.Wait()
		ours, _ := exec.Command("tshark", "-r", pcap, "-Y", "vrrp && ip.src==10.77.0.1").Output()
		if n := strings.Count(string(ours), "\n"); n < 10 {
			t.Fatalf("tshark decoded only %d of our VRRP packets:\n%s", n, ours)
		}
		bad, err := exec.Command("tshark", "-r", pcap, "-Y", "_ws.malformed || _ws.expert").Output()
		if err != nil || strings.TrimSpace(string(bad)) != "" {
			t.Fatalf("tshark reports problems (%v):\n%s", err, bad)
		}
		t.Logf("tshark: %d of our adverts decoded, no malformed or expert entries", strings.Count(string(ours), "\n"))
	} else {
		need(t, false, "tshark (apt-get install tshark)")
	}
}

// TestInteropFRR: FRR's vrrpd (with zebra) in namespace K, as the notes
// describe: a macvlan vrrp4-<ifindex>-<vrid> with the virtual MAC and the
// virtual address, protodown while Backup. hagent (200) preempts FRR (100),
// FRR takes over on crash and on graceful stop.
func TestInteropFRR(t *testing.T) {
	if testing.Short() {
		t.Skip("netns interop test (not in -short)")
	}
	need(t, have("/usr/lib/frr/vrrpd") && have("/usr/lib/frr/zebra"), "FRR (apt-get install frr)")
	l := newLab(t)
	k := l.ns("K")
	mv := "vrrp4-2-51" // eth0 is ifindex 2 in a fresh namespace (lo is 1)
	if idx := strings.TrimSpace(l.run("ip", "netns", "exec", k, "cat", "/sys/class/net/eth0/ifindex")); idx != "2" {
		mv = "vrrp4-" + idx + "-51"
	}
	l.run("ip", "-n", k, "link", "add", mv, "link", "eth0", "type", "macvlan", "mode", "bridge")
	l.run("ip", "-n", k, "link", "set", mv, "address", "00:00:5e:00:01:33")
	l.run("ip", "-n", k, "addr", "add", "10.77.0.100/24", "dev", mv)
	l.run("ip", "-n", k, "link", "set", mv, "up")
	l.run("ip", "netns", "exec", k, "sysctl", "-q", "-w", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2")
	// FRR drops to user frr: its directory must be reachable for it
	// (t.TempDir's parent is 0700).
	d, err := os.MkdirTemp("", "hagent-frr-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	t.Cleanup(func() { os.RemoveAll(d) })
	conf := filepath.Join(d, "frr.conf")
	os.WriteFile(conf, []byte("interface eth0\n vrrp 51 version 3\n vrrp 51 priority 100\n vrrp 51 advertisement-interval 100\n vrrp 51 ip 10.77.0.100\n"), 0o644)
	l.run("chown", "-R", "frr:frr", d)
	for _, daemon := range []string{"zebra", "vrrpd"} {
		pid := filepath.Join(d, daemon+".pid")
		l.run("ip", "netns", "exec", k, "/usr/lib/frr/"+daemon, "-d", "-f", conf, "-i", pid, "-z", filepath.Join(d, "zserv.api"),
			"--vty_socket", d, "-u", "frr", "-g", "frr", "--log", "file:"+filepath.Join(d, daemon+".log"))
		t.Cleanup(func() {
			if p := readPid(pid); p > 0 {
				syscall.Kill(p, syscall.SIGKILL)
			}
		})
		time.Sleep(500 * time.Millisecond)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(d, "vrrpd.log"))
			t.Logf("vrrpd log:\n%s", b)
		}
	})
	frrMaster := func() bool {
		out, _ := exec.Command("ip", "-n", k, "link", "show", mv).Output()
		return strings.Contains(string(out), "LOWER_UP") && !strings.Contains(string(out), "NO-CARRIER")
	}
	wait := func(wantA bool, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for time.Since(start) < within {
			if a, f := l.holds("A"), frrMaster(); a == wantA && f == !wantA {
				return time.Since(start)
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("want hagent master=%v: hagent holds VIP=%v, FRR master=%v", wantA, l.holds("A"), frrMaster())
		return 0
	}
	wait(false, 3*time.Second) // FRR alone becomes master
	h := l.hagent(200)
	t.Logf("hagent (200) preempts FRR (100) after %v", wait(true, 3*time.Second))
	time.Sleep(300 * time.Millisecond)
	wait(true, 50*time.Millisecond) // still exactly one master
	h.kill(syscall.SIGKILL)
	l.run("ip", "-n", l.ns("A"), "addr", "del", "10.77.0.100/24", "dev", "eth0") // model the outage
	t.Logf("hagent crash → FRR master after %v", wait(false, 2*time.Second))
	h = l.hagent(200)
	wait(true, 3*time.Second)
	h.kill(syscall.SIGTERM)
	t.Logf("hagent graceful stop → FRR master after %v", wait(false, 2*time.Second))
}
