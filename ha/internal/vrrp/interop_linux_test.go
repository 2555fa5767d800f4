//go:build linux

package vrrp

import (
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

	"github.com/hagent/hagent/ha/internal/role/roletest"
	"github.com/hagent/hagent/tools/lab"
	"github.com/hagent/hagent/tools/lab/reap"
)

// TestHelperVRRPRunner is not a test: the interop test runs the test binary
// inside a network namespace to get a runner there. It prints one line per
// role change, resigns on SIGTERM, and prints "STATS <n> <counters>" at
// every SIGUSR1 (n counts them: the lazy reading's tests read them while
// it runs).
func TestHelperVRRPRunner(t *testing.T) {
	roletest.Helper(t)
	prio, _ := strconv.Atoi(os.Getenv("PRIO"))
	iv, _ := time.ParseDuration(os.Getenv("INTERVAL"))
	r, err := NewRunner(RunnerConfig{Interface: os.Getenv("IF"), PrefixLen: 24, Machine: Config{
		VRID: 51, Priority: uint8(prio), AdvertInterval: iv, Preempt: true, AcceptMode: true,
		Addrs: []netip.Addr{netip.MustParseAddr(os.Getenv("VIP"))}, GARPCount: 2}})
	if err == nil {
		r.bpfHooks = bpfHooks{refuse: os.Getenv("BPF") == "refuse", skipStart: os.Getenv("BPF") == "nostart"}
	}
	if err == nil && os.Getenv("HOLD") == "1" {
		r.SetHold(true) // before Run: must not even start as master
	}
	if err == nil {
		usr := make(chan os.Signal, 4)
		signal.Notify(usr, syscall.SIGUSR1)
		go func() {
			for n := 1; ; n++ {
				<-usr
				s := r.Stats()
				fmt.Printf("STATS %d rx=%d lazy=%d wakeups=%d dropped=%d kernel=%v rings=%d watchdogs=%d\n", n, s.RxAdverts,
					s.LazyAdverts, s.Wakeups, s.LazyDropped, s.KernelTimer, s.RingWakeups, s.TimerWatchdogs)
			}
		}()
	}
	roletest.Serve(r, err, func() any { return r.Stats() })
}

const labVIP = "10.77.0.100"

// interop is hagent (host A) and another VRRP implementation (host K) on
// one LAN, and host M that sees everything the bridge floods.
type interop struct {
	t       *testing.T
	dir     string
	a, k, m *lab.Host
}

func newInterop(t *testing.T) *interop {
	l := lab.NewT(t)
	return &interop{t: t, dir: t.TempDir(),
		a: l.HostT(t, "A", "10.77.0.1/24"), k: l.HostT(t, "K", "10.77.0.2/24"), m: l.HostT(t, "M")}
}

// run runs a command (ip netns exec: with the namespace's /sys) and fails
// the test if it fails.
func (l *interop) run(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (l *interop) holds(h *lab.Host) bool { return roletest.Holds(h, labVIP) }

// waitHolder waits until exactly who holds the VIP, returns how long it took.
func (l *interop) waitHolder(who *lab.Host, within time.Duration) time.Duration {
	l.t.Helper()
	other := map[*lab.Host]*lab.Host{l.a: l.k, l.k: l.a}[who]
	return roletest.WaitOnly(l.t, labVIP, who, other, within)
}

// stable asserts that exactly who keeps the VIP for d (never both).
func (l *interop) stable(who *lab.Host, d time.Duration) {
	l.t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		a, k := l.holds(l.a), l.holds(l.k)
		if (who == l.a) != a || (who == l.k) != k {
			l.t.Fatalf("want only %s to hold the VIP: A=%v K=%v", who.Name, a, k)
		}
	}
}

// hagent starts the helper runner in A with 100 ms adverts.
func (l *interop) hagent(prio int, env ...string) *lab.Proc {
	l.t.Helper()
	env = append([]string{"IF=eth0", "VIP=" + labVIP, "INTERVAL=100ms", "PRIO=" + strconv.Itoa(prio)}, env...)
	return roletest.Start(l.t, l.a, "TestHelperVRRPRunner", fmt.Sprintf("hagent(prio %d)", prio), env...)
}

type keepalived struct {
	cmd              *exec.Cmd
	pidfile, vrrppid string
}

func (l *interop) keepalived(prio int) *keepalived {
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
	k.cmd = exec.Command("ip", "netns", "exec", l.k.NS, "keepalived", "-n", "-l", "-D", "-P",
		"-f", conf, "-p", k.pidfile, "-r", k.vrrppid)
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, _ := os.OpenFile(filepath.Join(l.dir, "keepalived.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	k.cmd.Stdout, k.cmd.Stderr = logf, logf
	if err := reap.Start(k.cmd); err != nil { // dies with the test
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
	roletest.Need(t, roletest.Have("keepalived"), "keepalived (apt-get install keepalived)")
	l := newInterop(t)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(l.dir, "keepalived.log"))
			t.Logf("keepalived log:\n%s", b)
		}
	})
	tsharkOK := roletest.Have("tshark")
	var tshark *lab.Proc
	pcap := filepath.Join(l.dir, "vrrp.pcap")
	if tsharkOK {
		var err error
		if tshark, err = l.m.Start("tshark", "-q", "-i", "eth0", "-f", "ip proto 112", "-w", pcap); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // tshark takes a while to start capturing
	}

	// hagent 200 vs keepalived 100: hagent wins.
	h := l.hagent(200)
	k := l.keepalived(100)
	l.waitHolder(l.a, 3*time.Second)
	l.stable(l.a, 500*time.Millisecond)

	// Graceful stop of hagent (priority 0): keepalived takes over after skew.
	roletest.Stop(h, syscall.SIGTERM)
	t.Logf("hagent graceful stop → keepalived holds the VIP after %v", l.waitHolder(l.k, 2*time.Second))
	l.stable(l.k, 300*time.Millisecond)

	// hagent comes back and preempts.
	h = l.hagent(200)
	t.Logf("hagent restart → preempts after %v", l.waitHolder(l.a, 3*time.Second))
	l.stable(l.a, 300*time.Millisecond)

	// Crash of hagent: keepalived takes over after Master_Down_Interval.
	roletest.Stop(h, syscall.SIGKILL)
	start := time.Now()
	for !l.holds(l.k) && time.Since(start) < 2*time.Second {
		time.Sleep(5 * time.Millisecond)
	}
	if !l.holds(l.k) {
		t.Fatal("keepalived did not take over after hagent crashed")
	}
	t.Logf("hagent crash → keepalived holds the VIP after %v", time.Since(start))
	// The dead process left the address in its kernel (as keepalived does);
	// the restarted runner clears it first, then preempts.
	h = l.hagent(200)
	l.waitHolder(l.a, 3*time.Second)
	l.stable(l.a, 300*time.Millisecond)
	roletest.Stop(h, syscall.SIGTERM)
	k.stop()

	// The other way round: keepalived 200 vs hagent 100.
	k = l.keepalived(200)
	l.waitHolder(l.k, 3*time.Second)
	// Held (table not yet downloaded), a higher priority must not preempt.
	h = l.hagent(250, "HOLD=1")
	l.stable(l.k, time.Second)
	roletest.Stop(h, syscall.SIGTERM)
	h = l.hagent(100)
	l.stable(l.k, 500*time.Millisecond)

	// keepalived crash: hagent takes over; remove the dead one's address as
	// a link-down would.
	k.crash()
	start = time.Now()
	for !l.holds(l.a) && time.Since(start) < 2*time.Second {
		time.Sleep(5 * time.Millisecond)
	}
	if !l.holds(l.a) {
		t.Fatal("hagent did not take over after keepalived crashed")
	}
	t.Logf("keepalived crash → hagent holds the VIP after %v", time.Since(start))
	l.run("ip", "-n", l.k.NS, "addr", "del", labVIP+"/24", "dev", "eth0")
	l.stable(l.a, 300*time.Millisecond)

	// keepalived restarts and preempts; then stops gracefully.
	k = l.keepalived(200)
	t.Logf("keepalived restart → preempts after %v", l.waitHolder(l.k, 3*time.Second))
	l.stable(l.k, 300*time.Millisecond)
	k.stop()
	t.Logf("keepalived graceful stop → hagent holds the VIP after %v", l.waitHolder(l.a, 2*time.Second))
	l.stable(l.a, 300*time.Millisecond)
	roletest.Stop(h, syscall.SIGTERM)

	if tsharkOK {
		time.Sleep(300 * time.Millisecond)
		roletest.Stop(tshark, syscall.SIGINT)
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
		roletest.Need(t, false, "tshark (apt-get install tshark)")
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
	roletest.Need(t, roletest.Have("/usr/lib/frr/vrrpd") && roletest.Have("/usr/lib/frr/zebra"), "FRR (apt-get install frr)")
	l := newInterop(t)
	k := l.k.NS
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
			if a, f := l.holds(l.a), frrMaster(); a == wantA && f == !wantA {
				return time.Since(start)
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("want hagent master=%v: hagent holds VIP=%v, FRR master=%v", wantA, l.holds(l.a), frrMaster())
		return 0
	}
	wait(false, 3*time.Second) // FRR alone becomes master
	h := l.hagent(200)
	t.Logf("hagent (200) preempts FRR (100) after %v", wait(true, 3*time.Second))
	time.Sleep(300 * time.Millisecond)
	wait(true, 50*time.Millisecond) // still exactly one master
	roletest.Stop(h, syscall.SIGKILL)
	l.run("ip", "-n", l.a.NS, "addr", "del", labVIP+"/24", "dev", "eth0") // model the outage
	t.Logf("hagent crash → FRR master after %v", wait(false, 2*time.Second))
	h = l.hagent(200)
	wait(true, 3*time.Second)
	roletest.Stop(h, syscall.SIGTERM)
	t.Logf("hagent graceful stop → FRR master after %v", wait(false, 2*time.Second))
}
