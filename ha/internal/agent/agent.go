package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/internal/datapath"
	"github.com/hagent/hagent/ha/internal/deadline"
	"github.com/hagent/hagent/ha/internal/role"
	"github.com/hagent/hagent/ha/internal/udpio"
	"github.com/hagent/hagent/ha/internal/version"
)

// logEvery rate-limits the log lines the registration path may cause.
const logEvery = time.Second

const (
	batchSize  = 64   // datagrams per recvmmsg
	numBatches = 4    // batches in flight between the reader and the owner
	rxBufSize  = 2048 // a registration request with extensions fits easily; larger is truncated and dropped
)

// batch is a unit of work handed from the reader goroutine to the owner:
// received datagrams in, replies out. Preallocated; recycled through free.
type batch struct {
	in  []udpio.Packet
	out []udpio.Packet
	v   []Verdict // out[i]'s verdict, until it is sealed into out[i].Buf
	it  []intent  // v[i]'s staged write, while the kernel is asked first
	ch  []Change  // and the change it made or asked for
	n   int
}

type reloadReq struct {
	cfg  *config.Config
	resp chan error
}

type consoleReq struct {
	req  console.Request
	resp chan *console.Response
	walk *bindingsWalk // non-nil: walk its next slice, answer with nil
}

// Agent runs one Home Agent: it owns the Core and is the only goroutine that
// touches it. Readers hand over packets on bounded channels; the console
// asks questions on another.
type Agent struct {
	cfg   *config.Config
	log   *slog.Logger
	core  *Core
	start time.Time

	conn        *udpio.Conn
	ln          net.Listener
	rx          chan *batch
	free        chan *batch
	cons        chan consoleReq
	grp         *group
	dpl         *dataplane  // nil: [datapath] disabled
	adv         *advertiser // nil: [advertise] disabled
	reg         *Registrar  // the registration path; the loop performs its actions
	acts        []Action    // what the registrar asked for, being performed
	hold        *holdQueue  // the registrar's (nil: replies are not held for a peer's ack), for the console
	stopElector context.CancelFunc
	linkDown    map[string]bool // tracked interfaces seen down
	reload      chan reloadReq
	done        chan struct{}                   // closed when the owner loop has returned
	onReady     func()                          // test hook
	onSlice     func(*bindingsWalk)             // test hook: after each `show bindings` slice, on the loop
	testElector func(awake func()) role.Elector // test hook: replaces the VRRP runner
	// testWall, if set before Run, replaces the wall clock (Unix ns) the
	// heartbeat drain ages kernel stamps by: a test steps it.
	testWall func() int64

	wg sync.WaitGroup
}

// New validates that the agent can run with cfg and allocates everything
// the registration path needs up front.
func New(cfg *config.Config, log *slog.Logger) (*Agent, error) {
	core, err := NewCore(cfg)
	if err != nil {
		return nil, err
	}
	a := &Agent{
		cfg:    cfg,
		log:    log,
		core:   core,
		start:  time.Now(),
		rx:     make(chan *batch, numBatches),
		free:   make(chan *batch, numBatches),
		cons:   make(chan consoleReq),
		done:   make(chan struct{}),
		reload: make(chan reloadReq),
	}
	for i := 0; i < numBatches; i++ {
		b := &batch{in: make([]udpio.Packet, batchSize), out: make([]udpio.Packet, batchSize), v: make([]Verdict, batchSize), it: make([]intent, batchSize), ch: make([]Change, batchSize)}
		for j := range b.in {
			b.in[j].Buf = make([]byte, rxBufSize)
			b.out[j].Buf = make([]byte, 0, ReplyBufLen)
		}
		a.free <- b
	}
	return a, nil
}

// now is the agent's monotonic clock in nanoseconds since start; lifetimes
// and deadlines use it so that a wall-clock step changes nothing.
func (a *Agent) now() int64 { return int64(time.Since(a.start)) }

// wall is the wall clock, Unix ns: what the kernel stamps arrivals on.
func (a *Agent) wall() int64 {
	if a.testWall != nil {
		return a.testWall()
	}
	return time.Now().UnixNano()
}

// Run serves until ctx is cancelled, then shuts down cleanly.
func (a *Agent) Run(ctx context.Context) error {
	ac := &a.cfg.Agent
	setMemoryLimit(ac.MemoryLimitMiB)
	listen := netip.AddrPortFrom(netip.IPv4Unspecified(), ac.ListenPort)
	// A deep receive buffer absorbs bursts (a fleet re-registering after a
	// failover) while the owner works through a batch.
	conn, err := udpio.Listen(listen, udpio.Options{RecvBuf: 4 << 20})
	if err != nil {
		return fmt.Errorf("agent: listening for registrations on udp %s: %w (is another Home Agent running? is the port free?)", listen, err)
	}
	a.conn = conn
	defer conn.Close()

	if err := a.listenConsole(); err != nil {
		return err
	}
	defer a.ln.Close()

	if a.grp, err = a.newGroup(); err != nil {
		return err
	}
	defer a.closeGroup()
	a.newRegistrar()
	if err := a.startAdvert(); err != nil {
		return err
	}
	defer a.stopAdvert() // idempotent; the normal path stops it before the election resigns
	if a.dpl, err = a.openDataplane(); err != nil {
		return err
	}
	defer a.closeDataplane()
	a.reg.kernel = a.dpl != nil
	if a.grp.m == nil && a.grp.elector == nil {
		// Standalone: active from the start.
		if vip := ac.VirtualAddress; vip.IsValid() && a.dpl != nil {
			if err := a.dpl.dp.AddVIP(netip.PrefixFrom(vip, ac.HomeNetwork.Bits())); err != nil {
				return fmt.Errorf("agent: adding the virtual address %s: %w", vip, err)
			}
		}
		a.activateDataplane(true)
	} else if a.dpl != nil {
		// A member starts inactive: clear what a crashed predecessor left
		// in the kernel; activation reprograms everything in one batch.
		if err := a.dpl.dp.Withdraw(); err != nil {
			a.log.Warn("clearing stale kernel state failed", "err", err)
		}
	}

	a.wg.Add(2)
	go a.readLoop()
	go a.consoleLoop()
	a.startGroup()

	a.log.Info("hagent ready",
		"version", version.String(), "address", ac.Address, "virtual", ac.VirtualAddress,
		"port", ac.ListenPort, "nodes", len(a.cfg.Nodes), "capacity", ac.Capacity,
		"console", ac.ConsoleSocket)
	if a.onReady != nil {
		a.onReady()
	}

	err = a.loop(ctx)
	close(a.done)
	// Nothing held waits any more, and the peers hear that we leave.
	a.perform(a.now(), a.reg.Handle(a.now(), Event{Kind: EvStop}, a.acts[:0]))
	// Order matters: the final advertisement (lifetime 0) leaves from the
	// virtual address, so advertisements stop before the election resigns.
	a.stopAdvert()
	if a.stopElector != nil {
		a.stopElector()
	}

	// Unblock the readers and the console, then wait for them (and for the
	// election to resign: it watches ctx too).
	conn.Close()
	a.ln.Close()
	a.closeGroup()
	a.wg.Wait()
	_ = os.Remove(ac.ConsoleSocket)
	a.log.Info("hagent stopped", "bindings", a.core.table.Len())
	return err
}

// loop is the owner: every mutation of the Core happens here.
func (a *Agent) loop(ctx context.Context) error {
	// A timerfd, not a Go timer: the registrar's deadline moves at every
	// heartbeat, and a Go timer would still wake the process at the old
	// time (docs/performance.md, "Idle cost").
	timer, err := deadline.New()
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer timer.Close()
	skew := timer.Start().Sub(a.start) // agent clock − timer clock, fixed
	// nil channels block forever: a standalone agent simply never selects them.
	var grx chan *gpkt
	var roles <-chan role.Change
	var links <-chan datapath.LinkEvent
	var reconcile <-chan time.Time
	var scanned <-chan *datapath.Scan
	var more <-chan struct{}
	if a.dpl == nil && a.cfg.VRRP.Enabled && len(a.cfg.VRRP.TrackInterfaces) > 0 {
		// Tracking needs link events even without kernel tunnels.
		w, err := datapath.WatchLinks(a.log.With("sub", "links"))
		if err != nil {
			return fmt.Errorf("agent: vrrp.track_interfaces: %w", err)
		}
		defer w.Close()
		links = w.Links()
	}
	if a.dpl != nil {
		links = a.dpl.dp.Links()
		if a.dpl.every > 0 {
			t := time.NewTicker(a.dpl.every)
			defer t.Stop()
			reconcile = t.C
		}
		scanned = a.dpl.scanned
		more = a.dpl.more
	}
	if a.grp.m != nil {
		grx = a.grp.rx
	}
	if a.grp.elector != nil {
		roles = a.grp.elector.Changes()
	}
	awake, hbReady := a.grp.awake, a.grp.hbReady // nil without the heartbeat socket
	for {
		a.drainOnTurn()    // the heartbeats queued since the last read, in this wake-up
		a.flushDataplane() // what the last iteration changed, in one batch
		a.armTimer(timer, skew)
		a.armAwake()
		select {
		case <-ctx.Done():
			return nil
		case b, ok := <-a.rx:
			if !ok {
				return errors.New("agent: the registration socket failed; see the log line above")
			}
			a.handleBatch(b)
		case p, ok := <-grx:
			if !ok {
				return errors.New("agent: the group socket failed; see the log line above")
			}
			a.groupReceive(p)
		case ch := <-roles:
			a.setRole(ch)
		case <-awake:
			a.electionAwake()
		case <-hbReady:
			a.heartbeatsReady()
		case ev, ok := <-links:
			if ok {
				a.linkEvent(ev)
			} else {
				links = nil
			}
		case <-reconcile:
			a.reconcileDataplane()
		case s := <-scanned:
			a.reconciled(s)
		case <-more:
			a.convergeSlice()
		case <-timer.C():
			a.timerFired(timer)
		case r := <-a.reload:
			r.resp <- a.reloadNow(r.cfg)
		case r := <-a.cons:
			if r.walk != nil {
				a.bindingsSlice(r.walk)
				if a.onSlice != nil {
					a.onSlice(r.walk)
				}
				r.resp <- nil
				continue
			}
			a.drainOnTurn() // what it shows includes what waits
			r.resp <- a.answer(r.req)
		}
	}
}

// timerFired runs the registrar's timers when their deadline came (owner
// goroutine); a tick for a deadline that moved later meanwhile is ignored.
func (a *Agent) timerFired(timer *deadline.Timer) {
	if !timer.Due(timer.Now()) {
		return
	}
	a.drainHeartbeats() // a peer's expiry: what it sent counts first
	now := a.now()
	a.perform(now, a.reg.Handle(now, Event{Kind: EvTimer}, a.acts[:0]))
}

// armTimer follows the registrar's deadline, converted to the timer's clock
// by the fixed skew between the two: an unchanged deadline is then the
// same value and re-arms nothing (a Reset from now would be a new value,
// and a timerfd_settime, at every turn of the loop).
func (a *Agent) armTimer(t *deadline.Timer, skew time.Duration) {
	dl := a.reg.NextDeadline()
	if dl == noDeadline {
		t.Set(deadline.Never)
		return
	}
	t.Set(time.Duration(dl) - skew) // in the past: at once
}

// handleBatch hands one batch of datagrams to the registrar and performs
// what it answers. It allocates nothing.
func (a *Agent) handleBatch(b *batch) {
	now := a.now()
	a.perform(now, a.reg.Handle(now, Event{Kind: EvBatch, Batch: b, Wall: time.Now()}, a.acts[:0]))
	b.n = 0
	a.free <- b
}

// changed hears about every table change. The redundancy protocol and the
// datapath attach here; today it logs (at debug level, checked first so that
// the hot path builds no log attributes when debug is off).
func (a *Agent) changed(ch Change) {
	switch ch.Kind {
	case Deregistered, Expired, Cleared, Withdrawn, Revoked:
		a.core.keepOthersNets(&ch.Entry)
	}
	a.dpl.queue(ch)
	if a.log.Enabled(context.Background(), slog.LevelDebug) {
		e := &ch.Entry
		a.log.Debug("binding "+ch.Kind.String(),
			"home", binding.U32Addr(e.Home), "care_of", binding.U32Addr(e.CareOf),
			"lifetime", e.Granted, "id", e.ID)
	}
}

// readLoop receives datagrams in batches and hands them to the owner. When
// the owner is slow, the reader blocks on the free list and the kernel's
// socket buffer absorbs (and, when full, counts) the excess.
func (a *Agent) readLoop() {
	defer a.wg.Done()
	defer close(a.rx)
	for b := range a.free {
		n, err := a.conn.ReadBatch(b.in)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrClosed) {
				a.log.Error("registration socket read failed", "err", err)
			}
			return
		}
		b.n = n
		a.rx <- b
	}
}

func (a *Agent) listenConsole() error {
	ln, err := console.Listen(a.cfg.Agent.ConsoleSocket)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.ln = ln
	return nil
}

// consoleLoop serves the console; the server bounds what clients may cost,
// and each answer is computed on the owner loop.
func (a *Agent) consoleLoop() {
	defer a.wg.Done()
	_ = console.NewServer(a.consoleAnswer, a.log.With("sub", "console")).Serve(a.ln)
}

// consoleAnswer hands one request to the owner loop and waits for its
// answer; `show bindings` is handed over one slice at a time, so that the
// loop serves registrations between slices (console_slices.go).
func (a *Agent) consoleAnswer(req console.Request) *console.Response {
	ch := make(chan *console.Response, 1)
	if isShowBindings(req) {
		w := newBindingsWalk(req)
		for !w.done {
			select {
			case a.cons <- consoleReq{walk: w, resp: ch}:
				<-ch
			case <-a.done:
				return &console.Response{Error: "agent is shutting down"}
			}
		}
		return &console.Response{Bindings: w.assemble()}
	}
	select {
	case a.cons <- consoleReq{req: req, resp: ch}:
		return <-ch
	case <-a.done:
		return &console.Response{Error: "agent is shutting down"}
	}
}

// Reload hands a new, already validated configuration to the owner loop
// (SIGHUP). It returns the reason when the reload is refused; the running
// configuration then stays as it was.
func (a *Agent) Reload(cfg *config.Config) error {
	ch := make(chan error, 1)
	select {
	case a.reload <- reloadReq{cfg: cfg, resp: ch}:
		return <-ch
	case <-a.done:
		return errors.New("agent: shutting down")
	}
}

// uptime returns how long the agent has run, rounded for people.
func (a *Agent) uptime() time.Duration { return time.Since(a.start).Round(time.Second) }

// memStats is read on demand for `show stats` (ReadMemStats stops the world
// briefly; never on a timer).
func memStats() runtime.MemStats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// setMemoryLimit applies agent.memory_limit_mib (0: no limit, Go's default).
func setMemoryLimit(mib int) {
	if mib > 0 {
		debug.SetMemoryLimit(int64(mib) << 20)
	} else {
		debug.SetMemoryLimit(math.MaxInt64)
	}
}

// liveHeap is the heap the last GC found live (heap in use also counts what
// the next GC will free: up to twice as much with the default GOGC).
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// rssBytes is this process's resident set (VmRSS in /proc/self/status): what
// the router's memory actually gives the agent. 0 without /proc.
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// reloadNow applies a reload after reading the heartbeats queued before it:
// they are judged by the keys they arrived under (a rotation may drop the
// key they carry).
func (a *Agent) reloadNow(cfg *config.Config) error {
	a.drainHeartbeats()
	return a.applyReload(cfg)
}
