package failover

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hagent/hagent/tools/lab"
	"github.com/hagent/hagent/tools/lab/reap"
	"github.com/hagent/hagent/tools/mnsim/sim"
)

// The topology every scenario shares: the home LAN 192.0.2.0/24, the
// virtual address 192.0.2.1, members at 192.0.2.11.. and the mobile node's
// host at 192.0.2.50 (its care-of address is never routed: the datapath is
// off, registrations are what is measured).
var (
	vip      = netip.MustParseAddr("192.0.2.1")
	careOf   = netip.MustParseAddr("198.51.100.7")
	poolBase = netip.MustParseAddr("192.0.2.129")
)

const (
	nodeSPI = 300
	nodeKey = "fleet-secret-01234"
	vrid    = 51
)

// Priorities of the members: member 1 wins, member 2 takes over.
var prios = []int{130, 120, 110}

// HagentConfig is member i (0-based) of the measured group: VRRP with
// advertisement interval iv, group sync on, datapath off, the pool
// 192.0.2.128/25 for the mobile nodes, its console at socket.
func HagentConfig(i int, iv time.Duration, socket string) string {
	return HagentConfigHB(i, iv, 0, socket)
}

// HagentConfigHB is HagentConfig with the group heartbeat's interval hb
// (0: hagent's default, negative: heartbeat off).
func HagentConfigHB(i int, iv, hb time.Duration, socket string) string {
	heartbeat := ""
	switch {
	case hb < 0:
		heartbeat = "heartbeat = false"
	case hb > 0:
		heartbeat = fmt.Sprintf("heartbeat_interval = %q", hb.String())
	}
	return fmt.Sprintf(`
[agent]
interface = "eth0"
address = "192.0.2.1%d"
virtual_address = "%v"
home_network = "192.0.2.0/24"
console_socket = %q
log_level = "info"
capacity = 1000

[[node]]
name = "fleet"
pool = "192.0.2.128/25"
spi = %d
key = "text:%s"

[group]
enabled = true
key = "text:group-secret-for-failover-01"
anti_entropy_interval = "2s"
%s

[vrrp]
enabled = true
vrid = %d
priority = %d
advert_interval = %q
garp_count = 1

[datapath]
enabled = false
`, i+1, vip, socket, nodeSPI, nodeKey, heartbeat, vrid, prios[i], iv.String())
}

type hgroup struct {
	cfg    Config
	iv     time.Duration
	l      *lab.Lab
	dir    string
	mn     *lab.Host
	hosts  []*lab.Host
	procs  []*lab.Proc
	socks  []string
	starts int
	probe  *regProbe
	homes  []netip.Addr
	hold   *holdWatch
}

func runHagent(ctx context.Context, cfg Config, iv time.Duration, kind Kind) (trials []Trial, err error) {
	log := cfg.Log.With("impl", "hagent", "advert", iv, "kind", kind)
	if _, err := os.Stat(filepath.Join(cfg.Bins, "hagent")); err != nil {
		return nil, fmt.Errorf("failover: no hagent binary in %q: build it (go build -o DIR/ ./ha/cmd/hagent) and pass the directory", cfg.Bins)
	}
	g := &hgroup{cfg: cfg, iv: iv}
	g.l, err = lab.New()
	if err != nil {
		return nil, err
	}
	defer g.l.Close()
	if g.dir, err = reap.TempDir("failover"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(g.dir)
	if g.mn, err = g.l.Host("mn", "192.0.2.50/24"); err != nil {
		return nil, err
	}
	for i := range prios {
		h, err := g.l.Host(fmt.Sprintf("ha%d", i+1), fmt.Sprintf("192.0.2.1%d/24", i+1))
		if err != nil {
			return nil, err
		}
		g.hosts = append(g.hosts, h)
		g.procs = append(g.procs, nil)
		g.socks = append(g.socks, "")
		if err := g.start(i); err != nil {
			return nil, err
		}
	}
	for k := range cfg.Nodes {
		a := poolBase.As4()
		a[3] += byte(k)
		g.homes = append(g.homes, netip.AddrFrom4(a))
	}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	g.probe, err = startRegProbe(pctx, g.mn.NS, sim.Options{
		HA: netip.AddrPortFrom(vip, 434), CareOf: careOf, SPI: nodeSPI, Key: []byte(nodeKey), Lifetime: 600,
	}, g.homes)
	if err != nil {
		return nil, err
	}
	var nss []string
	for _, h := range g.hosts {
		nss = append(nss, h.NS)
	}
	if g.hold, err = watchHolders(pctx, nss, "eth0", vip); err != nil {
		return nil, err
	}
	guard := 10*time.Second + 10*masterDown(iv, prios[2])
	for n := 1; n <= cfg.Trials; n++ {
		if err := g.steady(ctx, guard); err != nil {
			return trials, fmt.Errorf("failover: hagent %v %s before trial %d: %w", iv, kind, n, err)
		}
		steadyAt := time.Now()
		randomPhase(g.iv)
		t := g.trial(ctx, kind, guard)
		t.N = n
		if !t.t0.IsZero() {
			t.DoubleMS = msOf(g.hold.overlap(t.t0, t.end, reachable(kind, len(g.hosts))))
			t.SteadyDoubleMS = msOf(g.hold.overlap(steadyAt, t.t0, allMembers(len(g.hosts))))
		}
		log.Info("trial", "n", n, "answer_ms", t.AnswerMS, "addr_ms", t.AddrMS, "before", t.Before, "after", t.After, "actives", t.Actives, "err", t.Err)
		trials = append(trials, t)
		if err := g.restore(kind); err != nil {
			return trials, fmt.Errorf("failover: hagent %v %s restoring after trial %d: %w", iv, kind, n, err)
		}
		if ctx.Err() != nil {
			return trials, ctx.Err()
		}
	}
	return trials, nil
}

// start (re)starts member i with a fresh console socket and waits until it
// is ready.
func (g *hgroup) start(i int) error {
	g.starts++
	g.socks[i] = filepath.Join(g.dir, fmt.Sprintf("ha%d-%d.sock", i+1, g.starts))
	conf := filepath.Join(g.dir, fmt.Sprintf("ha%d.toml", i+1))
	if err := os.WriteFile(conf, []byte(HagentConfigHB(i, g.iv, g.cfg.Heartbeat, g.socks[i])), 0o600); err != nil {
		return err
	}
	p, err := g.hosts[i].Start(filepath.Join(g.cfg.Bins, "hagent"), "-config", conf)
	if err != nil {
		return err
	}
	g.procs[i] = p
	return p.WaitFor(`msg="hagent ready"`, 15*time.Second)
}

// steady waits until member 1 is active, the others standby, every member
// synced and holding every node's binding, and a renewal was answered.
func (g *hgroup) steady(ctx context.Context, within time.Duration) error {
	since := time.Now()
	deadline := since.Add(within)
	last := ""
	for {
		ok := true
		var st []string
		for i := range g.hosts {
			r, synced, err := role(g.socks[i])
			homes, herr := liveHomes(g.socks[i])
			want := "standby"
			if i == 0 {
				want = "active"
			}
			ok = ok && err == nil && herr == nil && strings.HasPrefix(r, want) && synced && len(homes) == len(g.homes)
			st = append(st, fmt.Sprintf("member %d: %q synced=%v live=%d %v %v", i+1, r, synced, len(homes), err, herr))
		}
		answered := g.probe.last().After(since)
		if ok && answered {
			return nil
		}
		last = strings.Join(st, "; ") + fmt.Sprintf("; renewal answered since: %v", answered)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("group not steady within %v: %s", within, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (g *hgroup) trial(ctx context.Context, kind Kind, guard time.Duration) (t Trial) {
	t = Trial{Impl: "hagent", Interval: g.iv.String(), Kind: kind, AnswerMS: -1, AddrMS: -1}
	before, err := liveHomes(g.socks[0])
	if err != nil {
		t.Err = err.Error()
		return t
	}
	t.Before = len(before)
	tctx, stop := context.WithCancel(ctx)
	defer stop()
	addr, err := watchAddr(tctx, g.hosts[1].NS, "eth0", vip)
	if err != nil {
		t.Err = err.Error()
		return t
	}
	var mark []int
	for _, p := range g.procs {
		mark = append(mark, strings.Count(p.Output(), "\n"))
	}
	t0 := time.Now()
	t.t0 = t0
	defer func() { t.end = time.Now() }()
	addr.arm(t0)
	cut, exited, err := g.fault(kind)
	if err != nil {
		t.Err = err.Error()
		return t
	}
	g.probe.arm(cut)
	defer g.probe.disarm()
	select {
	case got := <-g.probe.hit:
		t.AnswerMS = msOf(got.Sub(t0))
	case <-time.After(guard):
		t.Err = fmt.Sprintf("no renewal accepted on %v within %v of the fault", vip, guard)
	case <-ctx.Done():
		t.Err = ctx.Err().Error()
		return t
	}
	t.ExitMS = exitMS(exited, t0)
	// Which member answered: the one that says it is active now.
	answering := 1
	for i := 1; i < len(g.hosts); i++ {
		if r, _, err := role(g.socks[i]); err == nil && strings.HasPrefix(r, "active") {
			answering = i
			break
		}
	}
	after, err := liveHomes(g.socks[answering])
	if err != nil && t.Err == "" {
		t.Err = err.Error()
	}
	t.After = len(after)
	for h := range before {
		if !after[h] {
			t.Missing = append(t.Missing, h)
		}
	}
	slices.Sort(t.Missing)
	select {
	case got := <-addr.hit:
		t.AddrMS = msOf(got.Sub(t0))
	case <-time.After(100 * time.Millisecond):
	}
	// Once every backup's Master_Down_Interval has run, exactly one of the
	// reachable members (2 and 3; member 1 is dead or cut off) is active.
	time.Sleep(masterDown(g.iv, prios[2]) + g.iv)
	for i := 1; i < len(g.hosts); i++ {
		r, _, err := role(g.socks[i])
		if err != nil && t.Err == "" {
			t.Err = err.Error()
		}
		if strings.HasPrefix(r, "active") {
			t.Actives++
		}
	}
	if !t.OK() || (t.AddrMS >= 0 && t.AnswerMS < t.AddrMS-10) {
		for i, p := range g.procs {
			lines := strings.Split(p.Output(), "\n")
			for _, l := range lines[min(mark[i], len(lines)):] {
				t.Log = append(t.Log, fmt.Sprintf("member %d: %s", i+1, l))
			}
		}
	}
	return t
}

// fault takes member 1 out and returns the cut: requests sent from then on
// cannot be answered by it (it is dead, cut off, or has released the
// address). For a graceful stop, exited reports when the process ended.
func (g *hgroup) fault(kind Kind) (cut time.Time, exited <-chan time.Time, err error) {
	p := g.procs[0]
	switch kind {
	case KillLinkDown:
		if err := p.Signal(syscall.SIGKILL); err != nil {
			return cut, nil, err
		}
		if err := waitDone(p, 5*time.Second); err != nil {
			return cut, nil, err
		}
		return time.Now(), nil, g.hosts[0].LinkDown()
	case LinkDown:
		err := g.hosts[0].LinkDown()
		return time.Now(), nil, err
	case Term:
		return gracefulStop(p, g.hosts[0].NS)
	}
	return cut, nil, fmt.Errorf("failover: unknown fault %q", kind)
}

// restore brings member 1 back: as after a reboot, without the address
// the dead process left in its kernel; it downloads the table and preempts.
func (g *hgroup) restore(kind Kind) error {
	switch kind {
	case KillLinkDown:
		_ = g.hosts[0].IP("addr", "del", vip.String()+"/24", "dev", "eth0")
		if err := g.hosts[0].LinkUp(); err != nil {
			return err
		}
		return g.start(0)
	case LinkDown:
		return g.hosts[0].LinkUp()
	case Term:
		return g.start(0)
	}
	return nil
}

// gracefulStop sends SIGTERM and returns when the member can no longer
// answer on the virtual address: its kernel has released the address, or
// the process has exited, whichever comes first. Taking the exit alone would
// charge the failover with the process's shutdown time.
func gracefulStop(p *lab.Proc, ns string) (time.Time, <-chan time.Time, error) {
	exited := make(chan time.Time, 1)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return time.Time{}, nil, err
	}
	go func() { <-p.Done(); exited <- time.Now() }()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		select {
		case <-p.Done():
			return time.Now(), exited, nil
		default:
		}
		if has, err := holdsIn(ns, "eth0", vip); err == nil && !has {
			return time.Now(), exited, nil
		}
	}
	return time.Time{}, exited, fmt.Errorf("failover: pid %d still holds %v and runs 5s after SIGTERM", p.Cmd.Process.Pid, vip)
}

// exitMS is how long after t0 the process exited (waiting up to 5 s), -1
// when unknown.
func exitMS(exited <-chan time.Time, t0 time.Time) float64 {
	if exited == nil {
		return -1
	}
	select {
	case at := <-exited:
		return msOf(at.Sub(t0))
	case <-time.After(5 * time.Second):
		return -1
	}
}

func waitDone(p *lab.Proc, within time.Duration) error {
	select {
	case <-p.Done():
		return nil
	case <-time.After(within):
		return fmt.Errorf("failover: process %d still running %v after the signal", p.Cmd.Process.Pid, within)
	}
}
