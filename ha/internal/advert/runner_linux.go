//go:build linux

package advert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Multicast groups solicitations arrive on besides 224.0.0.1 (always
// joined) and the limited broadcast: all routers (RFC 1256 §5.1) and all
// mobility agents (RFC 5944 §2.2's 224.0.0.11).
var solicitGroups = [...]netip.Addr{
	netip.AddrFrom4([4]byte{224, 0, 0, 2}),
	netip.AddrFrom4([4]byte{224, 0, 0, 11}),
}

// Stats are the runner's counters, for `hactl show stats`.
type Stats struct {
	TxAdverts                                     uint64 // every advertisement sent, of which:
	TxPeriodic, TxActivated, TxSolicited, TxFinal uint64
	TxErrors                                      uint64 // sendto failed (counted, logged rate-limited)

	RxSolicitations uint64 // valid solicitations received
	// Of those: answered by an advertisement already pending (rate limit),
	// or ignored because this agent is standby.
	SolicitationsCoalesced, SolicitationsStandby uint64
	// Dropped solicitations per reason.
	DropTTL, DropChecksum, DropCode, DropShort, DropQueueFull uint64
}

// Info is what `hactl show agent` prints about advertisements.
type Info struct {
	Interface   string
	Active      bool
	Source      netip.Addr // virtual address while in a group, else own
	Destination netip.Addr
	Interval    time.Duration
	Lifetime    time.Duration // ICMP lifetime
	RegLifetime uint16        // seconds; 0xffff = unlimited
	Code        uint8
	Flags       Flags // Flags.String() prints "H G"
	PrefixLen   int   // -1: no Prefix-Lengths Extension
	Sequence    uint16
	Sent        uint64
	LastSent    time.Time // zero: none yet
}

type counters struct {
	tx, txErr                                       atomic.Uint64
	txBy                                            [Final + 1]atomic.Uint64
	rx, dropTTL, dropSum, dropCode, dropShort, full atomic.Uint64
}

// Runner sends Agent Advertisements on the home interface and answers
// Agent Solicitations. One goroutine (Run) owns the Scheduler; a reader
// goroutine hands solicitations over a bounded channel.
type Runner struct {
	cfg    Config
	log    *slog.Logger
	ifi    *net.Interface
	rx, tx int
	tmpl   Advertisement

	kick     chan struct{} // SetActive happened
	solicits chan struct{}
	c        counters
	closed   atomic.Bool
	running  atomic.Bool

	mu        sync.Mutex
	want      bool       // guarded by mu: what SetActive asked for
	wantSrc   netip.Addr // guarded by mu
	info      Info       // guarded by mu
	schedStat SchedulerStats
}

// New validates cfg, resolves the interface and opens the sockets (so that
// a caller may create the Runner inside a network namespace and run it from
// anywhere). The Runner starts standby: call SetActive(true, src) to
// advertise. Run closes the sockets; call Close if Run is never called.
func New(cfg Config, log *slog.Logger) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("advert: home interface %q: %w (agent.interface)", cfg.Interface, err)
	}
	r := &Runner{cfg: cfg, log: log.With("if", ifi.Name), ifi: ifi, rx: -1, tx: -1, tmpl: cfg.template(),
		kick: make(chan struct{}, 1), solicits: make(chan struct{}, 16)}
	if err := r.open(); err != nil {
		r.Close()
		return nil, err
	}
	pl := -1
	if r.tmpl.PrefixLengths {
		pl = int(r.tmpl.Prefix[0])
	}
	r.info = Info{Interface: ifi.Name, Destination: cfg.Advert.Destination, Interval: cfg.Advert.Interval,
		Lifetime: cfg.Advert.Lifetime, RegLifetime: cfg.RegLifetime, Code: r.tmpl.Code, Flags: r.tmpl.Flags, PrefixLen: pl}
	return r, nil
}

// open creates the sending socket (IPPROTO_RAW: we write the IP header,
// TTL 1 and the chosen source) and the receiving one (ICMP, filtered to
// type 10 in the kernel), both bound to the home interface.
func (r *Runner) open() error {
	var err error
	if r.tx, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW); err != nil {
		return fmt.Errorf("advert: raw IP socket (needs CAP_NET_RAW): %w", err)
	}
	if r.rx, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP); err != nil {
		return fmt.Errorf("advert: raw ICMP socket (needs CAP_NET_RAW): %w", err)
	}
	idx := int32(r.ifi.Index)
	steps := []struct {
		what string
		err  error
	}{
		{"SO_BINDTODEVICE (send)", unix.BindToDevice(r.tx, r.ifi.Name)},
		{"IP_MULTICAST_IF", unix.SetsockoptIPMreqn(r.tx, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: idx})},
		// Our own advertisements need not come back to this host.
		{"IP_MULTICAST_LOOP", unix.SetsockoptInt(r.tx, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0)},
		{"SO_BROADCAST", unix.SetsockoptInt(r.tx, unix.SOL_SOCKET, unix.SO_BROADCAST, 1)},
		{"SO_BINDTODEVICE (receive)", unix.BindToDevice(r.rx, r.ifi.Name)},
		// struct icmp_filter: a set bit drops that ICMP type in the kernel.
		{"ICMP_FILTER", unix.SetsockoptInt(r.rx, unix.SOL_RAW, unix.ICMP_FILTER, icmpFilter(TypeSolicitation))},
	}
	for _, g := range solicitGroups {
		steps = append(steps, struct {
			what string
			err  error
		}{"IP_ADD_MEMBERSHIP " + g.String(), unix.SetsockoptIPMreqn(r.rx, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP,
			&unix.IPMreqn{Multiaddr: g.As4(), Ifindex: idx})})
	}
	for _, s := range steps {
		if s.err != nil {
			return fmt.Errorf("advert: %s on %s: %w", s.what, r.ifi.Name, s.err)
		}
	}
	return nil
}

// Close releases the sockets. Run calls it on return; it is idempotent.
func (r *Runner) Close() {
	if r.closed.Swap(true) {
		return
	}
	if r.rx >= 0 {
		// Wakes a reader blocked in recvfrom (it then returns 0); Run
		// closes the descriptor once its reader has returned.
		_ = unix.Shutdown(r.rx, unix.SHUT_RDWR)
		if !r.running.Load() {
			unix.Close(r.rx)
		}
	}
	if r.tx >= 0 {
		unix.Close(r.tx)
	}
}

// SetActive starts advertising from src (the virtual address in a group;
// an invalid src means Config.Address) or stops. Safe from any goroutine;
// never blocks. The latest call wins.
func (r *Runner) SetActive(active bool, src netip.Addr) {
	if !src.IsValid() {
		src = r.cfg.Address
	}
	if active && (!src.Is4() || (r.cfg.HomeNetwork.IsValid() && !r.cfg.HomeNetwork.Contains(src))) {
		r.log.Error("advert: not advertising: source address must be an IPv4 address on the home network", "src", src, "home_network", r.cfg.HomeNetwork)
		active = false
	}
	r.mu.Lock()
	r.want, r.wantSrc = active, src
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Stats returns a snapshot of the counters.
func (r *Runner) Stats() Stats {
	c := &r.c
	r.mu.Lock()
	ss := r.schedStat
	r.mu.Unlock()
	return Stats{TxAdverts: c.tx.Load(), TxPeriodic: c.txBy[Periodic].Load(), TxActivated: c.txBy[Activated].Load(),
		TxSolicited: c.txBy[Solicited].Load(), TxFinal: c.txBy[Final].Load(), TxErrors: c.txErr.Load(),
		RxSolicitations: c.rx.Load(), SolicitationsCoalesced: ss.SolicitationsCoalesced,
		SolicitationsStandby: ss.SolicitationsWhileStandby, DropTTL: c.dropTTL.Load(), DropChecksum: c.dropSum.Load(),
		DropCode: c.dropCode.Load(), DropShort: c.dropShort.Load(), DropQueueFull: c.full.Load()}
}

// Info returns what is being advertised.
func (r *Runner) Info() Info {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.info
}

// Run advertises until ctx is done; then, if active, it sends the final
// advertisement (lifetime 0) and returns. Cancel it before the virtual
// address is given up, so that the final advertisement still leaves from it.
func (r *Runner) Run(ctx context.Context) error {
	r.running.Store(true)
	if r.closed.Load() {
		return errors.New("advert: Run on a closed Runner (New opens the sockets; Run once)")
	}
	readerDone := make(chan struct{})
	go func() { defer close(readerDone); r.read() }()
	defer func() {
		r.Close()
		<-readerDone
		unix.Close(r.rx)
	}()

	l := &runLoop{r: r, start: time.Now(), sch: NewScheduler(r.cfg.Advert.Interval),
		pkt: make([]byte, 0, ipHeaderLen+MaxLen), dst: &unix.SockaddrInet4{Addr: r.cfg.Advert.Destination.As4()},
		errLogged: -time.Hour}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			l.shutdown()
			return nil
		case <-r.kick:
			l.kicked()
		case <-r.solicits:
			l.sch.Solicit(l.now())
		case <-timer.C:
		}
		timer.Reset(l.step())
	}
}

// runLoop is Run's state: the Scheduler it owns and what sending needs.
type runLoop struct {
	r         *Runner
	start     time.Time
	sch       *Scheduler
	pkt       []byte
	dst       *unix.SockaddrInet4
	src       netip.Addr
	errLogged time.Duration
}

func (l *runLoop) now() time.Duration { return time.Since(l.start) }

// send sends one advertisement, counting it, or counting and logging (at
// most a line a minute) why it could not be sent.
func (l *runLoop) send(n time.Duration, s Send) {
	r := l.r
	a := r.tmpl
	a.Routers[0].Addr = l.src
	a.Sequence = s.Sequence
	a.Lifetime = uint16(r.cfg.Advert.Lifetime / time.Second)
	if s.Withdraw {
		a.Lifetime = 0
	}
	l.pkt = appendIPHeader(l.pkt[:0], l.src, r.cfg.Advert.Destination, 1, a.Len())
	var err error
	if l.pkt, err = a.AppendBinary(l.pkt); err == nil {
		err = unix.Sendto(r.tx, l.pkt, 0, l.dst)
	}
	if err != nil {
		r.c.txErr.Add(1)
		if n-l.errLogged >= time.Minute { // one line a minute, the counter has the rest
			l.errLogged = n
			r.log.Error("advert: sending advertisement failed", "src", l.src, "dst", r.cfg.Advert.Destination, "err", err)
		}
		return
	}
	r.c.tx.Add(1)
	r.c.txBy[s.Reason].Add(1)
	r.mu.Lock()
	r.info.Sent++
	r.info.LastSent = time.Now()
	r.mu.Unlock()
}

// step sends what is due, publishes the state for Info and Stats, and
// returns how long to sleep.
func (l *runLoop) step() time.Duration {
	r := l.r
	n := l.now()
	for {
		s, ok := l.sch.Poll(n)
		if !ok {
			break
		}
		l.send(n, s)
	}
	r.mu.Lock()
	r.info.Active, r.info.Source, r.info.Sequence = l.sch.Active(), l.src, l.sch.Sequence()
	r.schedStat = l.sch.Stats()
	r.mu.Unlock()
	if d := l.sch.Next(); d != NoDeadline {
		return max(d-n, 0)
	}
	return time.Hour
}

// kicked follows SetActive: start or stop advertising, or advertise a new
// source at once.
func (l *runLoop) kicked() {
	r := l.r
	r.mu.Lock()
	want, wsrc := r.want, r.wantSrc
	r.mu.Unlock()
	if want && wsrc != l.src && l.sch.Active() {
		// A new source while active: nodes see a new agent address;
		// advertise it at once (as on activation).
		l.sch.SetActive(l.now(), false)
	}
	switch {
	case want && !l.sch.Active():
		r.log.Info("advert: advertising", "src", wsrc, "dst", r.cfg.Advert.Destination, "interval", r.cfg.Advert.Interval)
	case !want && l.sch.Active():
		r.log.Info("advert: stopped advertising (standby)")
	}
	l.src = wsrc
	l.sch.SetActive(l.now(), want)
}

// shutdown sends the final advertisement (lifetime 0) if one is due.
func (l *runLoop) shutdown() {
	r := l.r
	if s, ok := l.sch.Shutdown(l.now()); ok {
		l.send(l.now(), s)
		r.log.Info("advert: stopped; final advertisement sent (lifetime 0)", "src", l.src, "seq", s.Sequence)
	}
	r.mu.Lock()
	r.info.Active = false
	r.mu.Unlock()
}

// read receives solicitations, validates them in place and signals the
// owner. Nothing is allocated per packet.
func (r *Runner) read() {
	buf := make([]byte, 1500)
	var sol Solicitation
	for {
		n, _, err := unix.Recvfrom(r.rx, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		if n == 0 || r.closed.Load() {
			return // shut down
		}
		// Raw IPv4 sockets deliver the IP header: the TTL comes from it.
		b := buf[:n]
		if len(b) < ipHeaderLen || b[0]>>4 != 4 || int(b[0]&0x0f)*4 > len(b) || b[0]&0x0f < 5 {
			r.c.dropShort.Add(1)
			continue
		}
		ihl := int(b[0]&0x0f) * 4
		// RFC 5944 §2.2: a mobile node sends solicitations with TTL 1. Any
		// other TTL was not sent on this link by a conforming node.
		if b[8] != 1 {
			r.c.dropTTL.Add(1)
			continue
		}
		if err := sol.UnmarshalBinary(b[ihl:]); err != nil {
			switch err {
			case ErrChecksum:
				r.c.dropSum.Add(1)
			case ErrCode:
				r.c.dropCode.Add(1)
			case ErrType: // not ours (the kernel filter passes only type 10)
			default:
				r.c.dropShort.Add(1)
			}
			continue
		}
		r.c.rx.Add(1)
		select {
		case r.solicits <- struct{}{}:
		default:
			// Answers are rate-limited and coalesced anyway; a full queue
			// means the owner already has one to answer.
			r.c.full.Add(1)
		}
	}
}

// icmpFilter is struct icmp_filter passing only type t: every other bit set.
func icmpFilter(t uint) int {
	m := ^uint32(1 << t)
	return int(int32(m))
}
