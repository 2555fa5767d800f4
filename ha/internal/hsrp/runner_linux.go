//go:build linux

package hsrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"

	"github.com/hagent/hagent/ha/internal/deadline"
	"github.com/hagent/hagent/ha/internal/role"
	"github.com/hagent/hagent/ha/internal/role/runner"
	"golang.org/x/sys/unix"
)

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	Machine   Config // Primary may be left invalid: the interface's first IPv4 address
	Interface string
	PrefixLen int          // of the virtual address when added (32 if 0)
	Logger    *slog.Logger // nil: discard
	// Awake, if set, is called in the runner's loop after each packet
	// received and each timer handled (runner.Loop.Awake).
	Awake func()
}

// Stats are the runner's counters.
type Stats struct {
	Rx, Tx, RoleChanges, GARPs uint64
	// Reclaims: re-announcements of the virtual address after a
	// lower-priority active router's hello or a stall; ReclaimsSuppressed:
	// triggers the rate limit folded into a later one.
	Reclaims, ReclaimsSuppressed                             uint64
	DropShort, DropVersion, DropOpCode, DropState, DropGroup uint64
	DropAuth, DropOther, ActionErrors                        uint64
}

type counters struct {
	// Protocol drop reasons; the counters every runner has are in r.sh.
	short, version, opcode, state, group, auth atomic.Uint64
}

// Runner owns the UDP socket (port 1985, group 224.0.0.2) on one interface,
// feeds the Machine and reports role changes. It implements role.Elector.
type Runner struct {
	cfg RunnerConfig
	sh  *runner.Shell // interface, role feed, virtual address, gratuitous ARP
	ctl chan Event
	c   counters
	vm  *vmac // nil: the interface's own MAC (Config.UseVirtualMAC false)
	inf info
}

var _ role.Elector = (*Runner)(nil)

// NewRunner validates cfg and resolves the interface; it opens no socket.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	sh, err := runner.New(runner.Config{Protocol: "hsrp", Interface: cfg.Interface, Primary: cfg.Machine.Primary,
		PrefixLen: cfg.PrefixLen, Logger: cfg.Logger, LogAttrs: []any{"group", cfg.Machine.Group}, State: Initial.String()})
	if err != nil {
		return nil, err
	}
	cfg.Machine.Primary = sh.Primary
	if err := cfg.Machine.Validate(); err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg, sh: sh, ctl: make(chan Event, 16)}, nil
}

// Changes implements role.Elector.
func (r *Runner) Changes() <-chan role.Change { return r.sh.Changes() }

// Current implements role.Elector.
func (r *Runner) Current() role.Change { return r.sh.Current() }

// SetHold and SetPriority implement role.Elector. Blocking on a full
// control channel is acceptable: these are rare operator/tracking events
// and Run drains the channel continuously.
func (r *Runner) SetHold(hold bool)   { r.ctl <- Event{Kind: EvHold, Hold: hold} }
func (r *Runner) SetPriority(p uint8) { r.ctl <- Event{Kind: EvPriority, Priority: p} }

// Announce sends gratuitous ARP for addrs (away mobile nodes) while Active.
func (r *Runner) Announce(addrs []netip.Addr) error {
	return r.sh.Announce(addrs, r.cfg.Machine.GARPCount, "active")
}

// Stats returns a snapshot of the counters.
func (r *Runner) Stats() Stats {
	c := &r.c
	return Stats{Rx: r.sh.Rx.Load(), Tx: r.sh.Tx.Load(), RoleChanges: r.sh.RoleChanges.Load(), GARPs: r.sh.GARPs.Load(),
		Reclaims: r.sh.Reclaims.Load(), ReclaimsSuppressed: r.sh.Suppressed.Load(),
		DropShort: c.short.Load(), DropVersion: c.version.Load(), DropOpCode: c.opcode.Load(),
		DropState: c.state.Load(), DropGroup: c.group.Load(), DropAuth: c.auth.Load(),
		DropOther: r.sh.Other.Load(), ActionErrors: r.sh.ActionErrors.Load()}
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
		r.sh.Other.Add(1)
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
		{"SO_BINDTODEVICE", unix.BindToDevice(fd, r.sh.Ifi.Name)},
		{"bind :1985", unix.Bind(fd, &unix.SockaddrInet4{Port: Port})},
		{"IP_ADD_MEMBERSHIP 224.0.0.2", unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP,
			&unix.IPMreqn{Multiaddr: Group.As4(), Ifindex: int32(r.sh.Ifi.Index)})},
		{"IP_MULTICAST_IF", unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(r.sh.Ifi.Index)})},
		{"IP_MULTICAST_TTL", unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 1)},
		{"IP_MULTICAST_LOOP", unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0)},
		{"IP_TOS", unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TOS, 0xc0)},
	}
	for _, s := range steps {
		if s.err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("hsrp: %s on %s: %w", s.what, r.sh.Ifi.Name, s.err)
		}
	}
	return fd, nil
}

// Run implements role.Elector; on ctx done it resigns (if active) and returns.
func (r *Runner) Run(ctx context.Context) error {
	fd, err := r.open()
	if err != nil {
		return err
	}
	var stale []netip.Addr // a VIP to be learned cannot have been left behind
	if v := r.cfg.Machine.VIP; v.IsValid() {
		stale = append(stale, v)
	}
	if r.cfg.Machine.UseVirtualMAC {
		if r.vm, err = r.openVMAC(); err != nil {
			unix.Close(fd)
			return err
		}
		defer func() {
			if err := r.vm.close(); err != nil {
				r.sh.Log.Warn("hsrp: removing the virtual MAC's macvlan", "err", err)
			}
		}()
	}
	if err := r.sh.Open(stale...); err != nil {
		unix.Close(fd)
		return err
	}
	defer r.sh.Close()
	msgs := make(chan Event, 64)
	stopReader, err := runner.Reader(fd, 1500, r.reader(msgs))
	if err != nil {
		return fmt.Errorf("hsrp: %w", err)
	}
	defer stopReader()

	clk, err := deadline.New()
	if err != nil {
		return fmt.Errorf("hsrp: %w", err)
	}
	defer clk.Close()
	m := New(r.cfg.Machine)
	pkt := make([]byte, 0, Len)
	loop := runner.Loop[Event, Action]{Machine: m, Received: msgs, Control: r.ctl,
		Startup: Event{Kind: EvEnable}, Shutdown: Event{Kind: EvDisable}, Timer: Event{Kind: EvTimer},
		Clock: clk, Awake: r.cfg.Awake, Do: func(acts []Action) { r.do(m, fd, acts, &pkt) }}
	loop.Run(ctx)
	return nil
}

// reader checks each message in place and hands over only valid ones;
// the buffer is reused, nothing is allocated per packet.
func (r *Runner) reader(msgs chan<- Event) func(b []byte, src netip.Addr) {
	return func(b []byte, src netip.Addr) {
		if !src.Is4() {
			return
		}
		ev := Event{Kind: EvMessage, Src: src}
		if ev.Src == r.cfg.Machine.Primary {
			return
		}
		if err := Receive(&ev.Msg, b, r.cfg.Machine.Group, &r.cfg.Machine.Auth); err != nil {
			r.count(err)
			return
		}
		r.sh.Rx.Add(1)
		select {
		case msgs <- ev:
		default:
			r.sh.Other.Add(1) // owner loop is behind: drop and count, never block
		}
	}
}

func (r *Runner) do(m *Machine, fd int, acts []Action, pkt *[]byte) {
	r.inf.store(m)
	send := func(op uint8, st State) error {
		msg := m.Message(op)
		msg.State = st // the state the action was taken in (a Resign is sent after leaving Active)
		var err error
		if *pkt, err = msg.AppendBinary((*pkt)[:0]); err != nil {
			return err
		}
		out := fd
		if r.vm != nil && st == Active {
			out = r.vm.tx // from the virtual MAC (§6.1)
		}
		err = runner.SendTo(out, *pkt, Group, Port)
		if err != nil && out != fd {
			err = runner.SendTo(fd, *pkt, Group, Port) // the macvlan is already down (a Resign)
		}
		if err == nil {
			r.sh.Tx.Add(1)
		}
		return err
	}
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
			if r.vm != nil {
				err = r.vm.addVIP(m.VIP())
			} else {
				err = r.sh.AddVIP(m.VIP())
			}
		case ActRemoveVIP:
			if r.vm != nil {
				err = r.vm.delVIP(m.VIP())
			} else {
				err = r.sh.DelVIP(m.VIP())
			}
		case ActGARP:
			err = r.sh.GARP(a.Count, m.VIP())
			if a.Reason == ReasonReclaimLower || a.Reason == ReasonReclaimStall {
				// Rate-limited by the machine: one line per burst.
				r.sh.Reclaims.Add(1)
				r.sh.Log.Info("hsrp: re-announcing the virtual address", "reason", a.Reason, "garps", a.Count)
			}
		case ActState:
			r.report(m, a.Reason, a.Peer)
		}
		if err != nil {
			r.sh.Failed(a.Kind, err)
		}
	}
	r.sh.Suppressed.Store(m.Suppressed())
	// The hold input changes the role without a state change.
	if r.sh.Current().Role != roleOf(m) {
		r.report(m, runner.HoldReason(m.Held()), netip.Addr{})
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
	r.sh.Publish(ch, "hsrp: state change", "priority", m.Priority())
}
