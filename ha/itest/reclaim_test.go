package itest

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hagent/hagent/tools/lab"
	"github.com/hagent/hagent/tools/mnsim/sim"
)

// These tests watch what the LAN believes, not what the members hold: a
// host namespace on the lab bridge renews a binding on the virtual address
// all along and its own ARP cache decides which member the renewal reaches.
// A backup that briefly took the address (the master stalled, or its
// announcements were cut off) leaves the host's entry on the backup's MAC
// when it steps down; the member that keeps the address must re-announce it
// so that the host follows at once, not after its neighbour entry has gone
// through STALE, DELAY and PROBE (5 to 20 s).

// reclaimBound is what these tests assert: a renewal answered again within
// it of the backup stepping down (its own log line). The goal is 1 s, met
// by far on a quiet machine (1–65 ms, logged by every run); the assertion
// allows 3 s because `make test` runs the QEMU guests beside this package
// on two cores, and a starved member must not fail it. Without the
// re-announcement the host stays on the backup's MAC until its neighbour
// entry has gone through STALE, DELAY and PROBE: 5 to 20 s, far outside.
const reclaimBound = 3 * time.Second

// reclaimGroupConfig is member i (1-based; 1 has the higher priority) of a
// pair electing with proto ("vrrp": 100 ms adverts; "hsrp": 1 s / 3 s, with
// the members' own MACs; "hsrp-vmac": the same with the virtual MAC).
func reclaimGroupConfig(proto string, i int) string {
	s := fmt.Sprintf(`
[agent]
interface = "eth0"
address = "192.0.2.1%d"
virtual_address = "192.0.2.1"
home_network = "192.0.2.0/24"
console_socket = "@SOCKET@"
log_level = "info"
capacity = 1000

[[node]]
name = "fleet"
pool = "192.0.2.64/26"
spi = 300
key = "text:fleet-secret-01234"

[group]
enabled = true
key = "text:group-secret-for-tests-0123"

[datapath]
enabled = false
`, i)
	switch proto {
	case "vrrp", "vrrp-vmac":
		s += fmt.Sprintf(`
[vrrp]
enabled = true
vrid = 51
priority = %d
advert_interval = "100ms"
garp_count = 1
use_virtual_mac = %v
`, 140-10*i, proto == "vrrp-vmac")
	case "hsrp", "hsrp-vmac":
		s += fmt.Sprintf(`
[hsrp]
enabled = true
group = 7
priority = %d
preempt = true
hello = "1s"
hold = "3s"
use_virtual_mac = %v
`, 140-10*i, proto == "hsrp-vmac")
	}
	return s
}

// renewals is a mobile node on the home link renewing one binding on the
// virtual address every gap, from its own namespace.
type renewals struct {
	mu   sync.Mutex
	seen []attempt
}

type attempt struct {
	sent, got time.Time
	ok        bool
}

const renewGap = 100 * time.Millisecond

func startRenewals(t *testing.T, ctx context.Context, ns string) *renewals {
	t.Helper()
	r := &renewals{}
	opts := sim.Options{HA: netip.MustParseAddrPort("192.0.2.1:434"), Home: netip.MustParseAddr("192.0.2.70"),
		CareOf: netip.MustParseAddr("198.51.100.7"), SPI: 300, Key: []byte("fleet-secret-01234"), Lifetime: 600,
		Timeout: 300 * time.Millisecond}
	// Two workers half a gap apart: a request leaves every gap/2 while one
	// waits for its timeout, which is the measurement's resolution.
	for w := range 2 {
		errc := make(chan error, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
			fd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err == nil {
				err = unix.Setns(fd, unix.CLONE_NEWNET)
				unix.Close(fd)
			}
			errc <- err
			if err != nil {
				return
			}
			time.Sleep(time.Duration(w) * renewGap / 2)
			for ctx.Err() == nil {
				sent := time.Now()
				res, err := sim.Exchange(ctx, opts)
				got := time.Now()
				r.mu.Lock()
				r.seen = append(r.seen, attempt{sent: sent, got: got, ok: err == nil && res.Reply.Code.Accepted()})
				r.mu.Unlock()
				if d := renewGap - got.Sub(sent); d > 0 {
					time.Sleep(d)
				}
			}
		}()
		if err := <-errc; err != nil {
			t.Fatalf("entering namespace %s: %v", ns, err)
		}
	}
	return r
}

// firstOKAfter is the first accepted renewal whose request left at or after
// from, and the number of requests sent after from before it.
func (r *renewals) firstOKAfter(from time.Time) (attempt, int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	failed := 0
	var best attempt
	found := false
	for _, a := range r.seen {
		if a.sent.Before(from) {
			continue
		}
		if a.ok && (!found || a.got.Before(best.got)) {
			best, found = a, true
		}
	}
	for _, a := range r.seen {
		if !a.sent.Before(from) && found && a.sent.Before(best.sent) && !a.ok {
			failed++
		}
	}
	return best, failed, found
}

// stepDownAt waits for the agent's log line saying it left the active role
// after since, and returns the time the agent logged it.
func stepDownAt(t *testing.T, a *Agent, proto string, since time.Time, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for _, ln := range strings.Split(a.Proc.Output(), "\n") {
			if !strings.Contains(ln, `msg="role change" from=active to=standby protocol=`+proto) {
				continue
			}
			ts, ok := lineTime(ln)
			if ok && !ts.Before(since) {
				return ts
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: no step-down to standby logged within %s; output:\n%s", a.Host.Name, within, a.Proc.Output())
	return time.Time{}
}

// lineTime parses slog's time=... attribute (millisecond precision).
func lineTime(ln string) (time.Time, bool) {
	i := strings.Index(ln, "time=")
	if i < 0 {
		return time.Time{}, false
	}
	f := strings.Fields(ln[i+len("time="):])
	if len(f) == 0 {
		return time.Time{}, false
	}
	ts, err := time.Parse(time.RFC3339Nano, f[0])
	return ts, err == nil
}

// hostMAC is the MAC of eth0 in h.
func hostMAC(t *testing.T, h *lab.Host) string {
	t.Helper()
	out, err := h.Run("ip", "-br", "link", "show", "eth0")
	f := strings.Fields(out)
	if err != nil || len(f) < 3 {
		t.Fatalf("ip -br link show eth0 in %s: %v %q", h.Name, err, out)
	}
	return f[2]
}

// neighMAC is the host's neighbour entry for the virtual address ("" if none).
func neighMAC(t *testing.T, h *lab.Host) string {
	t.Helper()
	out, err := h.Run("ip", "neigh", "show", "192.0.2.1", "dev", "eth0")
	if err != nil {
		t.Fatalf("ip neigh in %s: %v %s", h.Name, err, out)
	}
	f := strings.Fields(out)
	for i := range f {
		if f[i] == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

type reclaimLab struct {
	l      *lab.Lab
	mn     *lab.Host
	agents []*Agent
	macs   []string
	ren    *renewals
}

func newReclaimLab(t *testing.T, proto string) *reclaimLab {
	return newReclaimLabWant(t, proto, "")
}

// newReclaimLabWant: the host's entry for the virtual address must be mac
// ("": member 1's own MAC) once renewals flow.
func newReclaimLabWant(t *testing.T, proto, mac string) *reclaimLab {
	l := lab.NewT(t)
	g := &reclaimLab{l: l, mn: l.HostT(t, "mn", "192.0.2.50/24")}
	for i := 1; i <= 2; i++ {
		h := l.HostT(t, fmt.Sprintf("ha%d", i), fmt.Sprintf("192.0.2.1%d/24", i))
		g.agents = append(g.agents, StartAgent(t, h, reclaimGroupConfig(proto, i)))
		g.macs = append(g.macs, hostMAC(t, h))
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, a := range g.agents {
				t.Logf("%s's output:\n%s", a.Host.Name, a.Proc.Output())
			}
		}
	})
	eventually(t, 20*time.Second, "member 1 active, member 2 standby, both synced", func() (bool, string) {
		r1, r2 := redundancy(t, g.agents[0]), redundancy(t, g.agents[1])
		return strings.HasPrefix(r1.Role, "active") && strings.HasPrefix(r2.Role, "standby") && r1.Synced && r2.Synced,
			r1.Role + ", " + r2.Role
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	g.ren = startRenewals(t, ctx, g.mn.NS)
	eventually(t, 10*time.Second, "renewals accepted through member 1", func() (bool, string) {
		_, _, ok := g.ren.firstOKAfter(time.Now().Add(-time.Second))
		want := mac
		if want == "" {
			want = g.macs[0]
		}
		return ok && neighMAC(t, g.mn) == want, "host's entry for the virtual address: " + neighMAC(t, g.mn)
	})
	return g
}

// takeover waits until member 2 reports active.
func (g *reclaimLab) takeover(t *testing.T, within time.Duration) {
	eventually(t, within, "member 2 takes over", func() (bool, string) {
		r := redundancy(t, g.agents[1])
		return strings.HasPrefix(r.Role, "active"), r.Role
	})
}

// check asserts the acceptance: a renewal sent after member 2's step-down
// answered within reclaimBound of it (plus the probe's resolution), and the
// host's entry for the virtual address on member 1's MAC.
func (g *reclaimLab) check(t *testing.T, proto string, since time.Time) {
	t.Helper()
	down := stepDownAt(t, g.agents[1], strings.TrimSuffix(proto, "-vmac"), since, 30*time.Second)
	bound := reclaimBound + renewGap
	time.Sleep(bound + time.Second) // let the probe record past the bound
	first, failed, ok := g.ren.firstOKAfter(down)
	if !ok || first.got.Sub(down) > bound {
		got := "none"
		if ok {
			got = first.got.Sub(down).String()
		}
		t.Fatalf("first renewal sent after member 2 stepped down was answered after %s (%d failed before it), want within %s; host's entry for the virtual address: %s (member 1 %s, member 2 %s)",
			got, failed, bound, neighMAC(t, g.mn), g.macs[0], g.macs[1])
	}
	if mac := neighMAC(t, g.mn); mac != g.macs[0] {
		t.Fatalf("host's neighbour entry for the virtual address is %q, want member 1's MAC %s (member 2 is %s)", mac, g.macs[0], g.macs[1])
	}
	t.Logf("renewal answered %s after member 2 stepped down (%d failed before it; not asserted beyond %s)", first.got.Sub(down), failed, bound)
}

func testSpuriousTakeover(t *testing.T, proto string, stall time.Duration) {
	g := newReclaimLab(t, proto)
	if err := g.agents[0].Proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = g.agents[0].Proc.Signal(syscall.SIGCONT)
		}
	}()
	g.takeover(t, stall)
	// The host must have followed member 2's announcement: otherwise there
	// is nothing to reclaim and the test would prove nothing.
	eventually(t, 5*time.Second, "host's entry on member 2", func() (bool, string) {
		m := neighMAC(t, g.mn)
		return m == g.macs[1], m
	})
	since := time.Now().Add(-time.Second) // log times are in milliseconds
	if err := g.agents[0].Proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	g.check(t, proto, since)
}

// TestReclaimAfterStallVRRP: SIGSTOP of the master long enough for the
// backup to take over, then SIGCONT.
func TestReclaimAfterStallVRRP(t *testing.T) { testSpuriousTakeover(t, "vrrp", 5*time.Second) }

// TestReclaimAfterStallHSRP: the same with HSRP (hold time 3 s).
func TestReclaimAfterStallHSRP(t *testing.T) { testSpuriousTakeover(t, "hsrp", 10*time.Second) }

// bridgeDrop drops what match selects on the lab bridge (nft table name),
// until the returned heal, which does its work once however often called.
func bridgeDrop(t *testing.T, l *lab.Lab, name, match string) (heal func()) {
	t.Helper()
	lanNft(t, l, fmt.Sprintf(`
table bridge %s {
	chain forward {
		type filter hook forward priority 0; policy accept;
		%s counter drop
	}
}
`, name, match))
	healed := false
	return func() {
		if !healed {
			healed = true
			lanNft(t, l, "delete table bridge "+name+"\n")
		}
	}
}

func testPartitionHeal(t *testing.T, proto, match string, partition time.Duration) {
	requireNft(t)
	g := newReclaimLab(t, proto)
	// Drop member 1's election messages on the bridge: member 2 no longer
	// hears it and takes over; member 1 still hears member 2.
	heal := bridgeDrop(t, g.l, "hagent_reclaim", "ip saddr 192.0.2.11 "+match)
	defer heal()
	g.takeover(t, 15*time.Second)
	time.Sleep(partition)
	since := time.Now().Add(-time.Second)
	heal()
	g.check(t, proto, since)
}

// TestReclaimAfterPartitionVRRP: member 1's adverts cut off on the bridge
// for a while, then let through again.
func TestReclaimAfterPartitionVRRP(t *testing.T) {
	testPartitionHeal(t, "vrrp", "ip protocol 112", 3*time.Second)
}

// TestReclaimAfterPartitionHSRP: the same with HSRP's hellos (UDP 1985).
func TestReclaimAfterPartitionHSRP(t *testing.T) {
	testPartitionHeal(t, "hsrp", "udp dport 1985", 3*time.Second)
}

// fdbPort is the bridge port (the lab's veth of a host) that the LAN's
// bridge learnt mac on ("" if none).
func fdbPort(t *testing.T, l *lab.Lab, mac string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", l.Prefix+"-lan", "bridge", "fdb", "show", "br", "br0").CombinedOutput()
	if err != nil {
		t.Fatalf("bridge fdb show: %v\n%s", err, out)
	}
	for _, ln := range strings.Split(string(out), "\n") {
		f := strings.Fields(ln)
		if len(f) >= 3 && f[0] == mac && f[1] == "dev" {
			return f[2]
		}
	}
	return ""
}

// TestHSRPVirtualMAC: with use_virtual_mac (the default) the LAN sees one
// MAC for the virtual address, 0000.0c07.acXX (RFC 2281 §6.1): the host's
// ARP entry, and the bridge learns it on the active member's port (its
// hellos and gratuitous ARPs come from it). After a spurious takeover
// (SIGSTOP of member 1 until member 2 is active, SIGCONT) the MAC moves
// back to member 1's port within the acceptance bound of the step-down.
func TestHSRPVirtualMAC(t *testing.T) {
	const vmac = "00:00:0c:07:ac:07"
	g := newReclaimLabWant(t, "hsrp-vmac", vmac)
	h1, h2 := g.agents[0].Host.Veth, g.agents[1].Host.Veth
	eventually(t, 5*time.Second, "virtual MAC learnt on member 1's port", func() (bool, string) {
		p := fdbPort(t, g.l, vmac)
		return p == h1, p
	})
	if err := g.agents[0].Proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = g.agents[0].Proc.Signal(syscall.SIGCONT)
		}
	}()
	g.takeover(t, 10*time.Second)
	eventually(t, 5*time.Second, "virtual MAC learnt on member 2's port", func() (bool, string) {
		p := fdbPort(t, g.l, vmac)
		return p == h2, p
	})
	since := time.Now().Add(-time.Second)
	if err := g.agents[0].Proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	down := stepDownAt(t, g.agents[1], "hsrp", since, 30*time.Second)
	time.Sleep(reclaimBound + renewGap + time.Second)
	first, failed, ok := g.ren.firstOKAfter(down)
	if !ok || first.got.Sub(down) > reclaimBound+renewGap {
		t.Fatalf("first renewal after member 2 stepped down: ok=%v after %s (%d failed), want within %s; virtual MAC on port %q (member 1 %s, member 2 %s)",
			ok, first.got.Sub(down), failed, reclaimBound+renewGap, fdbPort(t, g.l, vmac), h1, h2)
	}
	if p := fdbPort(t, g.l, vmac); p != h1 {
		t.Fatalf("virtual MAC learnt on port %q, want member 1's %s", p, h1)
	}
	if m := neighMAC(t, g.mn); m != vmac {
		t.Fatalf("host's entry for the virtual address %q, want the virtual MAC %s", m, vmac)
	}
	t.Logf("renewal answered %s after member 2 stepped down", first.got.Sub(down))
}

// TestVRRPVirtualMACPartitionHeal: with vrrp.use_virtual_mac the address
// has one MAC, 00-00-5E-00-01-33 (VRID 51). The members' adverts are cut
// off in both directions, so both are master; when the cut heals, the one
// that steps down may do so before the master heard it (the case the
// re-announcement cannot see), and still the renewals are answered within
// the bound: the master's next advert, sent from the virtual MAC, moves the
// bridge back to its port, and the host's entry never changed.
func TestVRRPVirtualMACPartitionHeal(t *testing.T) {
	requireNft(t)
	const vmac = "00:00:5e:00:01:33"
	g := newReclaimLabWant(t, "vrrp-vmac", vmac)
	h1, h2 := g.agents[0].Host.Veth, g.agents[1].Host.Veth
	eventually(t, 5*time.Second, "virtual MAC learnt on member 1's port", func() (bool, string) {
		p := fdbPort(t, g.l, vmac)
		return p == h1, p
	})
	heal := bridgeDrop(t, g.l, "hagent_vmac", "ip protocol 112")
	defer heal()
	g.takeover(t, 15*time.Second)
	time.Sleep(2 * time.Second)
	since := time.Now().Add(-time.Second)
	heal()
	down := stepDownAt(t, g.agents[1], "vrrp", since, 30*time.Second)
	time.Sleep(reclaimBound + renewGap + time.Second)
	first, failed, ok := g.ren.firstOKAfter(down)
	if !ok || first.got.Sub(down) > reclaimBound+renewGap {
		t.Fatalf("first renewal after member 2 stepped down: ok=%v after %s (%d failed), want within %s; virtual MAC on port %q (member 1 %s, member 2 %s)",
			ok, first.got.Sub(down), failed, reclaimBound+renewGap, fdbPort(t, g.l, vmac), h1, h2)
	}
	if p := fdbPort(t, g.l, vmac); p != h1 {
		t.Fatalf("virtual MAC learnt on port %q, want member 1's %s (member 2 %s)", p, h1, h2)
	}
	if m := neighMAC(t, g.mn); m != vmac {
		t.Fatalf("host's entry for the virtual address %q, want the virtual MAC %s", m, vmac)
	}
	t.Logf("renewal answered %s after member 2 stepped down", first.got.Sub(down))
}
