package failover

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hagent/hagent/tools/lab"
	"github.com/hagent/hagent/tools/lab/reap"
)

var errNoKeepalived = errors.New("keepalived is not installed (apt-get install keepalived)")

// kpeer is one keepalived instance (VRRP only), its pid files chosen by us
// so that a crash can be modelled by PID: SIGKILL the VRRP child, then the
// parent (killing the parent alone makes the child resign like SIGTERM).
type kpeer struct {
	host            *lab.Host
	conf            string
	pidfile, vrrpid string
	proc            *lab.Proc
}

type kgroup struct {
	iv    time.Duration
	l     *lab.Lab
	dir   string
	mn    *lab.Host
	peers []*kpeer
	ping  *pingProbe
	hold  *holdWatch
}

// KeepalivedConfig is instance i (0-based) of the comparison pair: VRRPv3,
// the same VRID, priorities and interval as the hagent group.
func KeepalivedConfig(i int, iv time.Duration) string {
	return fmt.Sprintf(`global_defs {
  router_id failover%d
  vrrp_version 3
}
vrrp_instance VI {
  state BACKUP
  interface eth0
  virtual_router_id %d
  priority %d
  advert_int %s
  virtual_ipaddress {
    %v/24 dev eth0
  }
}
`, i+1, vrid, prios[i], strconv.FormatFloat(iv.Seconds(), 'f', -1, 64), vip)
}

func runKeepalived(ctx context.Context, cfg Config, iv time.Duration, kind Kind) (trials []Trial, err error) {
	if _, err := exec.LookPath("keepalived"); err != nil {
		return nil, errNoKeepalived
	}
	log := cfg.Log.With("impl", "keepalived", "advert", iv, "kind", kind)
	g := &kgroup{iv: iv}
	if g.l, err = lab.New(); err != nil {
		return nil, err
	}
	defer g.l.Close()
	if g.dir, err = reap.TempDir("failover-k"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(g.dir)
	if g.mn, err = g.l.Host("mn", "192.0.2.50/24"); err != nil {
		return nil, err
	}
	for i := 0; i < 2; i++ {
		h, err := g.l.Host(fmt.Sprintf("k%d", i+1), fmt.Sprintf("192.0.2.1%d/24", i+1))
		if err != nil {
			return nil, err
		}
		p := &kpeer{host: h, conf: filepath.Join(g.dir, fmt.Sprintf("k%d.conf", i+1)),
			pidfile: filepath.Join(g.dir, fmt.Sprintf("k%d.pid", i+1)), vrrpid: filepath.Join(g.dir, fmt.Sprintf("k%d-vrrp.pid", i+1))}
		if err := os.WriteFile(p.conf, []byte(KeepalivedConfig(i, iv)), 0o644); err != nil {
			return nil, err
		}
		g.peers = append(g.peers, p)
		if err := p.start(); err != nil {
			return nil, err
		}
	}
	defer func() {
		for _, p := range g.peers {
			p.crash() // by the PIDs of our pid files; lab.Close stops the rest
		}
	}()
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	if g.ping, err = startPingProbe(pctx, g.mn.NS, vip); err != nil {
		return nil, err
	}
	if g.hold, err = watchHolders(pctx, []string{g.peers[0].host.NS, g.peers[1].host.NS}, "eth0", vip); err != nil {
		return nil, err
	}
	guard := 10*time.Second + 10*masterDown(iv, prios[1])
	for n := 1; n <= cfg.Trials; n++ {
		if err := g.steady(ctx, guard); err != nil {
			return trials, fmt.Errorf("failover: keepalived %v %s before trial %d: %w", iv, kind, n, err)
		}
		steadyAt := time.Now()
		randomPhase(g.iv)
		t := g.trial(ctx, kind, guard)
		t.N = n
		if !t.t0.IsZero() {
			t.DoubleMS = msOf(g.hold.overlap(t.t0, t.end, reachable(kind, 2)))
			t.SteadyDoubleMS = msOf(g.hold.overlap(steadyAt, t.t0, allMembers(2)))
		}
		log.Info("trial", "n", n, "answer_ms", t.AnswerMS, "addr_ms", t.AddrMS, "actives", t.Actives, "err", t.Err)
		trials = append(trials, t)
		if err := g.restore(kind); err != nil {
			return trials, fmt.Errorf("failover: keepalived %v %s restoring after trial %d: %w", iv, kind, n, err)
		}
		if ctx.Err() != nil {
			return trials, ctx.Err()
		}
	}
	return trials, nil
}

func (p *kpeer) start() error {
	os.Remove(p.pidfile)
	os.Remove(p.vrrpid)
	proc, err := p.host.Start("keepalived", "-n", "-l", "-D", "-P", "-f", p.conf, "-p", p.pidfile, "-r", p.vrrpid)
	if err != nil {
		return err
	}
	p.proc = proc
	// Its VRRP child writes its pid file once running: from then on the
	// timings measure the protocol, not the start-up.
	for end := time.Now().Add(10 * time.Second); readPid(p.vrrpid) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			return fmt.Errorf("failover: keepalived in %s wrote no VRRP pid file %s within 10s; output:\n%s", p.host.NS, p.vrrpid, proc.Output())
		}
	}
	return nil
}

func readPid(f string) int {
	b, _ := os.ReadFile(f)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func (p *kpeer) running() bool {
	select {
	case <-p.proc.Done():
		return false
	default:
		return true
	}
}

// crash: SIGKILL the VRRP child (its PID from the pid file we chose), then
// the parent we started.
func (p *kpeer) crash() error {
	if !p.running() {
		return nil
	}
	if pid := readPid(p.vrrpid); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := p.proc.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	return waitDone(p.proc, 5*time.Second)
}

func (g *kgroup) holds(i int) bool {
	ok, _ := holdsIn(g.peers[i].host.NS, "eth0", vip)
	return ok
}

// steady waits until instance 1 alone holds the address and answers pings.
func (g *kgroup) steady(ctx context.Context, within time.Duration) error {
	since := time.Now()
	for {
		a, b := g.holds(0), g.holds(1)
		answered := g.ping.last().After(since)
		if a && !b && answered {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(since.Add(within)) {
			return fmt.Errorf("not steady within %v: instance 1 holds %v, instance 2 holds %v, ping answered %v", within, a, b, answered)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (g *kgroup) trial(ctx context.Context, kind Kind, guard time.Duration) (t Trial) {
	t = Trial{Impl: "keepalived", Interval: g.iv.String(), Kind: kind, AnswerMS: -1, AddrMS: -1}
	tctx, stop := context.WithCancel(ctx)
	defer stop()
	addr, err := watchAddr(tctx, g.peers[1].host.NS, "eth0", vip)
	if err != nil {
		t.Err = err.Error()
		return t
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
	g.ping.arm(cut)
	defer g.ping.disarm()
	select {
	case got := <-g.ping.hit:
		t.AnswerMS = msOf(got.Sub(t0))
	case <-time.After(guard):
		t.Err = fmt.Sprintf("no echo reply from %v within %v of the fault", vip, guard)
	case <-ctx.Done():
		t.Err = ctx.Err().Error()
		return t
	}
	select {
	case got := <-addr.hit:
		t.AddrMS = msOf(got.Sub(t0))
	case <-time.After(100 * time.Millisecond):
	}
	t.ExitMS = exitMS(exited, t0)
	time.Sleep(masterDown(g.iv, prios[1]) + g.iv)
	if g.holds(1) { // instance 1 is dead or cut off: the only reachable one
		t.Actives = 1
	}
	return t
}

// fault: as hgroup.fault.
func (g *kgroup) fault(kind Kind) (cut time.Time, exited <-chan time.Time, err error) {
	p := g.peers[0]
	switch kind {
	case KillLinkDown:
		if err := p.crash(); err != nil {
			return cut, nil, err
		}
		return time.Now(), nil, p.host.LinkDown()
	case LinkDown:
		err := p.host.LinkDown()
		return time.Now(), nil, err
	case Term:
		return gracefulStop(p.proc, p.host.NS)
	}
	return cut, nil, fmt.Errorf("failover: unknown fault %q", kind)
}

func (g *kgroup) restore(kind Kind) error {
	p := g.peers[0]
	switch kind {
	case KillLinkDown:
		_ = p.host.IP("addr", "del", vip.String()+"/24", "dev", "eth0") // a rebooted box has no address
		if err := p.host.LinkUp(); err != nil {
			return err
		}
		return p.start()
	case LinkDown:
		return p.host.LinkUp()
	case Term:
		return p.start()
	}
	return nil
}
