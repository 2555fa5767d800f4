//go:build linux

package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/hagent/hagent/ha/internal/deadline"
	"github.com/hagent/hagent/ha/internal/role"
	"github.com/hagent/hagent/ha/internal/role/runner"
	"golang.org/x/sys/unix"
)

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	Machine   Config // Primary may be left invalid: the interface's first IPv4 address
	Interface string // the LAN interface the group shares
	// PrefixLen of the virtual address when added to the interface (32 if 0).
	PrefixLen int
	Logger    *slog.Logger // nil: slog.New(slog.DiscardHandler)
	// Awake, if set, is called in the runner's loop after each packet
	// received and each timer handled (runner.Loop.Awake).
	Awake func()
}

// Stats are the runner's counters (read with Runner.Stats).
type Stats struct {
	RxAdverts, TxAdverts, RoleChanges, GARPs uint64
	// Reclaims: re-announcements of the virtual addresses after a
	// lower-priority advert or a stall; ReclaimsSuppressed: triggers that
	// the rate limit folded into a later one (Config.GARPLowerPrioInterval).
	Reclaims, ReclaimsSuppressed uint64
	// Drops per reason (RFC 5798 §7.1).
	DropTTL, DropVersion, DropType, DropChecksum, DropVRID, DropAddrList, DropInterval, DropShort, DropOther uint64
	ActionErrors                                                                                             uint64
	// LazyAdverts: adverts of the master a backup follows read from the
	// lazy socket (lazy_linux.go), included in RxAdverts; LazyDropped:
	// datagrams the kernel dropped there, its queue full; Wakeups: the
	// owner loop's wake-ups (packets read at once, timers, control).
	LazyAdverts, LazyDropped, Wakeups uint64
	// KernelTimer: the kernel keeps the Master_Down_Timer
	// (lazy_bpf_linux.go); RingWakeups: its calls when it ran out;
	// TimerWatchdogs: the times it did not and the process acted anyway
	// (then back to the lazy reading). The adverts the kernel took count
	// in LazyAdverts and RxAdverts.
	KernelTimer                 bool
	RingWakeups, TimerWatchdogs uint64
}

type counters struct {
	// Protocol drop reasons; the counters every runner has are in r.sh.
	ttl, version, typ, checksum, vrid, addrlist, interval, short atomic.Uint64
}

// Runner owns the raw IP socket (protocol 112) on one interface, feeds the
// Machine and reports role changes. It implements role.Elector.
type Runner struct {
	cfg RunnerConfig
	sh  *runner.Shell // interface, role feed, virtual addresses, gratuitous ARP
	ctl chan rxEvent
	c   counters
	inf info
	vm  *vmac // nil: the interface's own MAC (Config.UseVirtualMAC false)

	wakeups  atomic.Uint64
	lz       atomic.Pointer[lazy] // while Run runs
	bpfHooks bpfHooks             // tests' fault injection
}

// rxEvent is what the owner loop handles: the machine's event and, for an
// advert read at once, the IP packet it came in (n bytes; 0: none, or too
// long to be a template), which may become the lazy reading's template.
type rxEvent struct {
	Event
	n   uint8
	pkt [MaxTemplate]byte
}

// owner is the loop's machine: the pure Machine, then the lazy reading's
// template, which follows what the machine follows.
type owner struct {
	m  *Machine
	lz *lazy
}

func (o *owner) Handle(now time.Duration, ev rxEvent, out []Action) ([]Action, time.Duration) {
	out, dl := o.m.Handle(now, ev.Event, out)
	o.lz.follow(o.m, &ev)
	return out, o.lz.bpf.after(o.m, &ev, dl)
}

var _ role.Elector = (*Runner)(nil)

// NewRunner validates cfg and resolves the interface; it opens no socket.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	sh, err := runner.New(runner.Config{Protocol: "vrrp", Interface: cfg.Interface, Primary: cfg.Machine.Primary,
		PrefixLen: cfg.PrefixLen, Logger: cfg.Logger, LogAttrs: []any{"vrid", cfg.Machine.VRID}, State: Initialize.String()})
	if err != nil {
		return nil, err
	}
	cfg.Machine.Primary = sh.Primary
	if err := cfg.Machine.Validate(); err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg, sh: sh, ctl: make(chan rxEvent, 16)}, nil
}

// Primary is the source address adverts are sent from.
func (r *Runner) Primary() netip.Addr { return r.cfg.Machine.Primary }

// Changes implements role.Elector.
func (r *Runner) Changes() <-chan role.Change { return r.sh.Changes() }

// Current implements role.Elector.
func (r *Runner) Current() role.Change { return r.sh.Current() }

// SetHold implements role.Elector.
func (r *Runner) SetHold(hold bool) { r.send(Event{Kind: EvHold, Hold: hold}) }

// SetPriority implements role.Elector.
func (r *Runner) SetPriority(p uint8) { r.send(Event{Kind: EvPriority, Priority: p}) }

func (r *Runner) send(ev Event) {
	// Blocking on a full control channel is acceptable here: these are rare
	// operator/tracking events and Run drains the channel continuously.
	r.ctl <- rxEvent{Event: ev}
}

// Announce implements role.Elector: gratuitous ARP for addrs (the away mobile
// nodes' home addresses), GARPCount times each.
func (r *Runner) Announce(addrs []netip.Addr) error {
	return r.sh.Announce(addrs, r.cfg.Machine.GARPCount, "master")
}

// Stats returns a snapshot of the counters.
func (r *Runner) Stats() Stats {
	c := &r.c
	s := Stats{RxAdverts: r.sh.Rx.Load(), TxAdverts: r.sh.Tx.Load(), RoleChanges: r.sh.RoleChanges.Load(), GARPs: r.sh.GARPs.Load(),
		Reclaims: r.sh.Reclaims.Load(), ReclaimsSuppressed: r.sh.Suppressed.Load(),
		DropTTL: c.ttl.Load(), DropVersion: c.version.Load(), DropType: c.typ.Load(), DropChecksum: c.checksum.Load(),
		DropVRID: c.vrid.Load(), DropAddrList: c.addrlist.Load(), DropInterval: c.interval.Load(),
		DropShort: c.short.Load(), DropOther: r.sh.Other.Load(), ActionErrors: r.sh.ActionErrors.Load(),
		Wakeups: r.wakeups.Load()}
	if z := r.lz.Load(); z != nil {
		s.LazyAdverts, s.LazyDropped = z.adverts.Load(), z.dropped.Load()
		if b := z.bpf; b != nil {
			n := b.adverts()
			s.RxAdverts, s.LazyAdverts = s.RxAdverts+n, s.LazyAdverts+n
			s.KernelTimer = !b.off.Load()
			s.RingWakeups, s.TimerWatchdogs = b.rings.Load(), b.watchdogs.Load()
		}
	}
	return s
}

func (r *Runner) count(err error) {
	c := &r.c
	switch {
	case errors.Is(err, ErrTTL):
		c.ttl.Add(1)
	case errors.Is(err, ErrVersion):
		c.version.Add(1)
	case errors.Is(err, ErrType):
		c.typ.Add(1)
	case errors.Is(err, ErrChecksum):
		c.checksum.Add(1)
	case errors.Is(err, ErrVRID):
		c.vrid.Add(1)
	case errors.Is(err, ErrAddrList):
		c.addrlist.Add(1)
	case errors.Is(err, ErrInterval):
		c.interval.Add(1)
	case errors.Is(err, ErrTruncated):
		c.short.Add(1)
	default:
		r.sh.Other.Add(1)
	}
}

// openSockets: a receiver (unbound, so it sees multicast; bound to the
// device, joined to 224.0.0.18) and a sender bound to the primary address (so
// the kernel's source is the one the checksum covers), TTL 255, no loopback.
func (r *Runner) openSockets() (rx, tx int, err error) {
	mreq := &unix.IPMreqn{Multiaddr: Group.As4(), Ifindex: int32(r.sh.Ifi.Index)}
	rx, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, IPProtocol)
	if err != nil {
		return -1, -1, fmt.Errorf("vrrp: raw socket (protocol 112) needs CAP_NET_RAW: %w", err)
	}
	tx, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, IPProtocol)
	if err != nil {
		unix.Close(rx)
		return -1, -1, fmt.Errorf("vrrp: raw socket (protocol 112): %w", err)
	}
	steps := []struct {
		what string
		err  error
	}{
		{"SO_BINDTODEVICE", unix.BindToDevice(rx, r.sh.Ifi.Name)},
		{"IP_ADD_MEMBERSHIP 224.0.0.18", unix.SetsockoptIPMreqn(rx, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq)},
		{"bind primary", unix.Bind(tx, &unix.SockaddrInet4{Addr: r.cfg.Machine.Primary.As4()})},
		{"SO_BINDTODEVICE tx", unix.BindToDevice(tx, r.sh.Ifi.Name)},
		{"IP_MULTICAST_IF", unix.SetsockoptIPMreqn(tx, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(r.sh.Ifi.Index)})},
		{"IP_MULTICAST_TTL", unix.SetsockoptInt(tx, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, TTL)},
		{"IP_MULTICAST_LOOP", unix.SetsockoptInt(tx, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0)},
		// Adverts must go out even when the kernel's queue is busy.
		{"IP_TOS", unix.SetsockoptInt(tx, unix.IPPROTO_IP, unix.IP_TOS, 0xc0)},
	}
	for _, s := range steps {
		if s.err != nil {
			unix.Close(rx)
			unix.Close(tx)
			return -1, -1, fmt.Errorf("vrrp: %s on %s: %w", s.what, r.sh.Ifi.Name, s.err)
		}
	}
	return rx, tx, nil
}

// timerSlack is how late the machine's deadlines may fire. A backup's
// Master_Down_Timer counts from its master's newest advert, read at the
// wake-up the timer itself makes (lazy_linux.go), so it moves by three
// advertisement intervals plus microseconds of arrival jitter; within
// this slack that is a cadence the kernel re-arms (deadline.SetSlack),
// instead of a timerfd_settime at every wake-up. A verdict is late by at
// most this (against a Master_Down_Interval of 300 ms or more); the
// master's adverts leave this much after their grid at most, still on it.
const timerSlack = time.Millisecond

// Run implements role.Elector. It returns after resigning when ctx is done.
func (r *Runner) Run(ctx context.Context) error {
	rx, tx, err := r.openSockets()
	if err != nil {
		return err
	}
	defer unix.Close(tx)
	if r.cfg.Machine.UseVirtualMAC {
		if r.vm, err = r.openVMAC(); err != nil {
			unix.Close(rx)
			return err
		}
		defer func() {
			if err := r.vm.close(); err != nil {
				r.sh.Log.Warn("vrrp: removing the virtual MAC's macvlan", "err", err)
			}
		}()
	}
	if err := r.sh.Open(r.cfg.Machine.Addrs...); err != nil {
		unix.Close(rx)
		return err
	}
	defer r.sh.Close()
	clk, err := deadline.New()
	if err != nil {
		unix.Close(rx)
		return fmt.Errorf("vrrp: %w", err)
	}
	defer clk.Close()
	clk.SetSlack(timerSlack)
	// Before the reader: the polled socket's filter is set from here on.
	z, err := r.openLazy(rx, clk.Now)
	if err != nil {
		unix.Close(rx)
		return err
	}
	defer z.close()
	m := New(r.cfg.Machine)
	z.bpf = r.openBPF(z, m)
	defer z.bpf.close()
	r.lz.Store(z)
	adverts := make(chan rxEvent, 64)
	z.bpf.start(adverts)
	stopReader, err := runner.Reader(rx, 1500, r.reader(adverts))
	if err != nil {
		return fmt.Errorf("vrrp: %w", err)
	}
	defer stopReader()

	pkt := make([]byte, 0, HeaderLen+4*MaxAddrs)
	loop := runner.Loop[rxEvent, Action]{Machine: &owner{m: m, lz: z}, Received: adverts, Control: r.ctl,
		Startup: rxEvent{Event: Event{Kind: EvStartup}}, Shutdown: rxEvent{Event: Event{Kind: EvShutdown}},
		Timer: rxEvent{Event: Event{Kind: EvTimer}}, Clock: clk, Awake: r.cfg.Awake, Queued: z.drain,
		Wakeups: &r.wakeups, Do: func(acts []Action) { r.do(m, tx, acts, &pkt) }}
	loop.Run(ctx)
	return nil
}

// reader parses each packet in place and hands over only valid adverts;
// the buffer is reused, nothing is allocated per packet.
func (r *Runner) reader(adverts chan<- rxEvent) func(b []byte, _ netip.Addr) {
	want := &Expect{VRID: r.cfg.Machine.VRID, Addrs: r.cfg.Machine.Addrs}
	var a Advertisement
	return func(b []byte, _ netip.Addr) {
		// Raw IPv4 sockets deliver the IP header: TTL and addresses come
		// from it (no IP_RECVTTL needed).
		if len(b) < 20 || b[0]>>4 != 4 {
			r.c.short.Add(1)
			return
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			r.c.short.Add(1)
			return
		}
		ttl := int(b[8])
		src := netip.AddrFrom4([4]byte(b[12:16]))
		dst := netip.AddrFrom4([4]byte(b[16:20]))
		if src == r.cfg.Machine.Primary {
			return
		}
		if err := Receive(&a, b[ihl:], src, dst, ttl, want); err != nil {
			r.count(err)
			return
		}
		r.sh.Rx.Add(1)
		ev := rxEvent{Event: Event{Kind: EvAdvert, Src: src, Priority: a.Priority, Interval: a.IntervalDuration()}}
		if TemplateOK(b) {
			ev.n = uint8(copy(ev.pkt[:], b))
		}
		select {
		case adverts <- ev:
		default:
			r.sh.Other.Add(1) // owner loop is behind: drop and count, never block
		}
	}
}

func (r *Runner) do(m *Machine, tx int, acts []Action, pkt *[]byte) {
	r.inf.store(m)
	mc := &r.cfg.Machine
	for _, a := range acts {
		var err error
		switch a.Kind {
		case ActSendAdvert:
			adv := Advertisement{VRID: mc.VRID, Priority: a.Priority, Interval: Centiseconds(mc.AdvertInterval)}
			_ = adv.SetAddresses(mc.Addrs) // validated in NewRunner
			*pkt, err = adv.AppendChecksummed((*pkt)[:0], mc.Primary, Group)
			if err == nil {
				out := tx
				if r.vm != nil && r.vm.up {
					out = r.vm.tx // from the virtual MAC (§7.3)
				}
				err = runner.SendTo(out, *pkt, Group, 0)
			}
			if err == nil {
				r.sh.Tx.Add(1)
			}
		case ActAddVIP:
			if r.vm != nil {
				err = r.vm.addVIP(mc.Addrs)
			} else {
				err = r.sh.AddVIP(mc.Addrs...)
			}
		case ActRemoveVIP:
			if r.vm != nil {
				err = r.vm.delVIP(mc.Addrs)
			} else {
				err = r.sh.DelVIP(mc.Addrs...)
			}
		case ActGARP:
			err = r.sh.GARP(a.Count, mc.Addrs...)
			if a.Reason == ReasonReclaimLower || a.Reason == ReasonReclaimStall {
				// Rate-limited by the machine: one line per burst.
				r.sh.Reclaims.Add(1)
				r.sh.Log.Info("vrrp: re-announcing the virtual addresses", "reason", a.Reason, "garps", a.Count)
			}
		case ActBecomeMaster, ActBecomeBackup, ActBecomeInit:
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
	switch {
	case m.State() == Master:
		return role.Active
	case m.State() == Backup && !m.Held():
		return role.Standby
	}
	return role.Passive
}

func (r *Runner) report(m *Machine, reason string, peer netip.Addr) {
	ch := role.Change{Role: roleOf(m), Protocol: "vrrp", State: m.State().String(), Reason: reason, Peer: peer}
	r.sh.Publish(ch, "vrrp: role change", "priority", m.Priority())
}
