//go:build linux

package hsrp

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

	"github.com/hagent/hagent/ha/internal/role"
	"github.com/hagent/hagent/ha/internal/role/vipnet"
	"golang.org/x/sys/unix"
)

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	Machine   Config // Primary may be left invalid: the interface's first IPv4 address
	Interface string
	PrefixLen int          // of the virtual address when added (32 if 0)
	Logger    *slog.Logger // nil: discard
}

// Stats are the runner's counters.
type Stats struct {
	Rx, Tx, RoleChanges, GARPs                               uint64
	DropShort, DropVersion, DropOpCode, DropState, DropGroup uint64
	DropAuth, DropOther, ActionErrors                        uint64
}

type counters struct {
	rx, tx, changes, garps                     atomic.Uint64
	short, version, opcode, state, group, auth atomic.Uint64
	other, actionErr                           atomic.Uint64
}

// Runner owns the UDP socket (port 1985, group 224.0.0.2) on one interface,
// feeds the Machine and reports role changes. It implements role.Elector.
type Runner struct {
	cfg     RunnerConfig
	ifi     *net.Interface
	log     *slog.Logger
	changes chan role.Change
	ctl     chan Event
	c       counters

	mu      sync.Mutex
	current role.Change
	arp     *vipnet.ARP
	active  bool
	vip     netip.Addr
}

var _ role.Elector = (*Runner)(nil)

// NewRunner validates cfg and resolves the interface.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("hsrp: interface %q: %w", cfg.Interface, err)
	}
	if !cfg.Machine.Primary.IsValid() {
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if x, ok := netip.AddrFromSlice(n.IP); ok && x.Unmap().Is4() {
					cfg.Machine.Primary = x.Unmap()
					break
				}
			}
		}
	}
	if err := cfg.Machine.Validate(); err != nil {
		return nil, err
	}
	if cfg.PrefixLen == 0 {
		cfg.PrefixLen = 32
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	r := &Runner{cfg: cfg, ifi: ifi, log: lg.With("group", cfg.Machine.Group, "if", ifi.Name),
		changes: make(chan role.Change, 16), ctl: make(chan Event, 16)}
	r.current = role.Change{Role: role.Passive, Protocol: "hsrp", State: Initial.String(), Reason: "not started"}
	return r, nil
}

func (r *Runner) Changes() <-chan role.Change { return r.changes }

func (r *Runner) Current() role.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current
}

func (r *Runner) SetHold(hold bool)   { r.ctl <- Event{Kind: EvHold, Hold: hold} }
func (r *Runner) SetPriority(p uint8) { r.ctl <- Event{Kind: EvPriority, Priority: p} }

// Announce sends gratuitous ARP for addrs (away mobile nodes) while Active.
func (r *Runner) Announce(addrs []netip.Addr) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.active || r.arp == nil {
		return errors.New("hsrp: announce: not active; only the active agent answers for away nodes")
	}
	sent, err := r.arp.Announce(addrs, r.cfg.Machine.GARPCount)
	r.c.garps.Add(uint64(sent))
	return err
}

// Stats returns a snapshot of the counters.
func (r *Runner) Stats() Stats {
	c := &r.c
	return Stats{Rx: c.rx.Load(), Tx: c.tx.Load(), RoleChanges: c.changes.Load(), GARPs: c.garps.Load(),
		DropShort: c.short.Load(), DropVersion: c.version.Load(), DropOpCode: c.opcode.Load(),
		DropState: c.state.Load(), DropGroup: c.group.Load(), DropAuth: c.auth.Load(),
		DropOther: c.other.Load(), ActionErrors: c.actionErr.Load()}
}

func (r *Runner) count(err error) {
	c := &r.c
	switch {
	case errors.Is(err, ErrTruncated):
		c.short.Add(1)
	case errors.Is(err, ErrVersion):
		c.version.Add(1)
	case errors.Is(err, ErrOpCode):
		c.opcode.Add(1)
	case errors.Is(err, ErrState):
		c.state.Add(1)
	case errors.Is(err, ErrGroup):
		c.group.Add(1)
	case errors.Is(err, ErrAuth):
		c.auth.Add(1)
	default:
		c.other.Add(1)
	}
}

func (r *Runner) open() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, fmt.Errorf("hsrp: udp socket: %w", err)
	}
	steps := []struct {
		what string
		err  error
	}{
		{"SO_REUSEADDR", unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)},
		{"SO_BINDTODEVICE", unix.BindToDevice(fd, r.ifi.Name)},
		{"bind :1985", unix.Bind(fd, &unix.SockaddrInet4{Port: Port})},
		{"IP_ADD_MEMBERSHIP 224.0.0.2", unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP,
			&unix.IPMreqn{Multiaddr: Group.As4(), Ifindex: int32(r.ifi.Index)})},
		{"IP_MULTICAST_IF", unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(r.ifi.Index)})},
		{"IP_MULTICAST_TTL", unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 1)},
		{"IP_MULTICAST_LOOP", unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0)},
		{"IP_TOS", unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TOS, 0xc0)},
	}
	for _, s := range steps {
		if s.err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("hsrp: %s on %s: %w", s.what, r.ifi.Name, s.err)
		}
	}
	return fd, nil
}

type rxMsg struct {
	src netip.Addr
	msg Message
}

// Run implements role.Elector; on ctx done it resigns (if active) and returns.
func (r *Runner) Run(ctx context.Context) error {
	fd, err := r.open()
	if err != nil {
		return err
	}
	arp, err := vipnet.OpenARP(r.ifi)
	if err != nil {
		unix.Close(fd)
		return err
	}
	r.mu.Lock()
	r.arp = arp
	r.mu.Unlock()
	defer arp.Close()
	if v := r.cfg.Machine.VIP; v.IsValid() {
		_ = vipnet.DelAddr(r.ifi.Index, netip.PrefixFrom(v, r.cfg.PrefixLen)) // stale, after a crash
	}

	msgs := make(chan rxMsg, 64)
	readerDone := make(chan struct{})
	go func() { defer close(readerDone); r.read(fd, msgs) }()
	defer func() {
		unix.Shutdown(fd, unix.SHUT_RDWR)
		unix.Close(fd)
		<-readerDone
	}()

	start := time.Now()
	now := func() time.Duration { return time.Since(start) }
	m := New(r.cfg.Machine)
	out := make([]Action, 0, 8)
	pkt := make([]byte, 0, Len)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	handle := func(ev Event) {
		var dl time.Duration
		out, dl = m.Handle(now(), ev, out[:0])
		r.do(m, fd, out, &pkt)
		d := time.Duration(1<<62) - 1
		if dl != NoDeadline {
			d = max(dl-now(), 0)
		}
		timer.Reset(d)
	}
	// Apply SetHold/SetPriority calls made before Run first: a held owner
	// must not start as master.
	for pending := true; pending; {
		select {
		case ev := <-r.ctl:
			handle(ev)
		default:
			pending = false
		}
	}
	handle(Event{Kind: EvEnable})
	for {
		select {
		case <-ctx.Done():
			handle(Event{Kind: EvDisable})
			return nil
		case x := <-msgs:
			handle(Event{Kind: EvMessage, Src: x.src, Msg: x.msg})
		case ev := <-r.ctl:
			handle(ev)
		case <-timer.C:
			handle(Event{Kind: EvTimer})
		}
	}
}

func (r *Runner) read(fd int, msgs chan<- rxMsg) {
	buf := make([]byte, 1500)
	for {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		if n == 0 && from == nil {
			return // shut down
		}
		sa, ok := from.(*unix.SockaddrInet4)
		if !ok {
			continue
		}
		var x rxMsg
		x.src = netip.AddrFrom4(sa.Addr)
		if x.src == r.cfg.Machine.Primary {
			continue
		}
		if err := Receive(&x.msg, buf[:n], r.cfg.Machine.Group, &r.cfg.Machine.Auth); err != nil {
			r.count(err)
			continue
		}
		r.c.rx.Add(1)
		select {
		case msgs <- x:
		default:
			r.c.other.Add(1)
		}
	}
}

func (r *Runner) do(m *Machine, fd int, acts []Action, pkt *[]byte) {
	dst := &unix.SockaddrInet4{Addr: Group.As4(), Port: Port}
	send := func(op uint8, st State) error {
		msg := m.Message(op)
		msg.State = st // the state the action was taken in (a Resign is sent after leaving Active)
		var err error
		if *pkt, err = msg.AppendBinary((*pkt)[:0]); err != nil {
			return err
		}
		if err = unix.Sendto(fd, *pkt, 0, dst); err == nil {
			r.c.tx.Add(1)
		}
		return err
	}
	changed := false
	for _, a := range acts {
		var err error
		switch a.Kind {
		case ActHello:
			err = send(OpHello, a.State)
		case ActCoup:
			err = send(OpCoup, a.State)
		case ActResign:
			err = send(OpResign, a.State)
		case ActAddVIP:
			err = vipnet.AddAddr(r.ifi.Index, netip.PrefixFrom(m.VIP(), r.cfg.PrefixLen))
		case ActRemoveVIP:
			err = vipnet.DelAddr(r.ifi.Index, netip.PrefixFrom(m.VIP(), r.cfg.PrefixLen))
		case ActGARP:
			r.mu.Lock()
			err = r.arp.Gratuitous(m.VIP(), a.Count)
			r.mu.Unlock()
			r.c.garps.Add(uint64(a.Count))
		case ActState:
			r.report(m, a.Reason, a.Peer)
			changed = true
		}
		if err != nil {
			r.c.actionErr.Add(1)
			r.log.Error("hsrp: action failed", "action", a.Kind, "err", err)
		}
	}
	r.mu.Lock()
	stale := r.current.Role != roleOf(m)
	r.mu.Unlock()
	if stale && !changed {
		reason := "initialized from the group (hold released)"
		if m.Held() {
			reason = "held: not yet initialized from the group"
		}
		r.report(m, reason, netip.Addr{})
	}
}

func roleOf(m *Machine) role.Role {
	switch m.State() {
	case Active:
		return role.Active
	case Listen, Speak, Standby:
		if !m.Held() {
			return role.Standby
		}
	}
	return role.Passive
}

func (r *Runner) report(m *Machine, reason string, peer netip.Addr) {
	ch := role.Change{Role: roleOf(m), Protocol: "hsrp", State: m.State().String(), Reason: reason, Peer: peer}
	r.mu.Lock()
	r.current = ch
	r.active = ch.Role == role.Active
	r.vip = m.VIP()
	r.mu.Unlock()
	r.c.changes.Add(1)
	r.log.Info("hsrp: state change", "role", ch.Role, "state", ch.State, "reason", reason, "priority", m.Priority())
	for {
		select {
		case r.changes <- ch:
			return
		default:
			select {
			case <-r.changes:
			default:
			}
		}
	}
}
