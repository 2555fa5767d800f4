//go:build linux

package vrrp

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
	Interface string // the LAN interface the group shares
	// PrefixLen of the virtual address when added to the interface (32 if 0).
	PrefixLen int
	Logger    *slog.Logger // nil: slog.New(slog.DiscardHandler)
}

// Stats are the runner's counters (read with Runner.Stats).
type Stats struct {
	RxAdverts, TxAdverts, RoleChanges, GARPs uint64
	// Drops per reason (RFC 5798 §7.1).
	DropTTL, DropVersion, DropType, DropChecksum, DropVRID, DropAddrList, DropInterval, DropShort, DropOther uint64
	ActionErrors                                                                                             uint64
}

type counters struct {
	rx, tx, changes, garps                                              atomic.Uint64
	ttl, version, typ, checksum, vrid, addrlist, interval, short, other atomic.Uint64
	actionErr                                                           atomic.Uint64
}

type ctl struct {
	ev Event
}

// Runner owns the raw IP socket (protocol 112) on one interface, feeds the
// Machine and reports role changes. It implements role.Elector.
type Runner struct {
	cfg     RunnerConfig
	ifi     *net.Interface
	log     *slog.Logger
	changes chan role.Change
	ctl     chan ctl
	c       counters

	mu      sync.Mutex
	current role.Change
	arp     *vipnet.ARP
	active  bool
}

var _ role.Elector = (*Runner)(nil)

// NewRunner validates cfg and resolves the interface; it opens no socket.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("vrrp: interface %q: %w", cfg.Interface, err)
	}
	if !cfg.Machine.Primary.IsValid() {
		cfg.Machine.Primary, err = firstIPv4(ifi)
		if err != nil {
			return nil, err
		}
	}
	if err := cfg.Machine.Validate(); err != nil {
		return nil, err
	}
	if cfg.PrefixLen == 0 {
		cfg.PrefixLen = 32
	}
	if cfg.PrefixLen < 1 || cfg.PrefixLen > 32 {
		return nil, fmt.Errorf("vrrp: prefix length %d out of range 1..32", cfg.PrefixLen)
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	r := &Runner{cfg: cfg, ifi: ifi, log: lg.With("vrid", cfg.Machine.VRID, "if", ifi.Name),
		changes: make(chan role.Change, 16), ctl: make(chan ctl, 16)}
	r.current = role.Change{Role: role.Passive, Protocol: "vrrp", State: Initialize.String(), Reason: "not started"}
	return r, nil
}

func firstIPv4(ifi *net.Interface) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("vrrp: addresses of %s: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if x, ok := netip.AddrFromSlice(n.IP); ok && x.Unmap().Is4() {
				return x.Unmap(), nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("vrrp: interface %s has no IPv4 address: configure one or set the primary address", ifi.Name)
}

// Primary is the source address adverts are sent from.
func (r *Runner) Primary() netip.Addr { return r.cfg.Machine.Primary }

// Changes implements role.Elector.
func (r *Runner) Changes() <-chan role.Change { return r.changes }

// Current implements role.Elector.
func (r *Runner) Current() role.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current
}

// SetHold implements role.Elector.
func (r *Runner) SetHold(hold bool) { r.send(Event{Kind: EvHold, Hold: hold}) }

// SetPriority implements role.Elector.
func (r *Runner) SetPriority(p uint8) { r.send(Event{Kind: EvPriority, Priority: p}) }

func (r *Runner) send(ev Event) {
	// Blocking on a full control channel is acceptable here: these are rare
	// operator/tracking events and Run drains the channel continuously.
	r.ctl <- ctl{ev: ev}
}

// Announce implements role.Elector: gratuitous ARP for addrs (the away mobile
// nodes' home addresses), GARPCount times each.
func (r *Runner) Announce(addrs []netip.Addr) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.active || r.arp == nil {
		return errors.New("vrrp: announce: not master; only the active agent answers for away nodes")
	}
	sent, err := r.arp.Announce(addrs, r.cfg.Machine.GARPCount)
	r.c.garps.Add(uint64(sent))
	return err
}

// Stats returns a snapshot of the counters.
func (r *Runner) Stats() Stats {
	c := &r.c
	return Stats{RxAdverts: c.rx.Load(), TxAdverts: c.tx.Load(), RoleChanges: c.changes.Load(), GARPs: c.garps.Load(),
		DropTTL: c.ttl.Load(), DropVersion: c.version.Load(), DropType: c.typ.Load(), DropChecksum: c.checksum.Load(),
		DropVRID: c.vrid.Load(), DropAddrList: c.addrlist.Load(), DropInterval: c.interval.Load(),
		DropShort: c.short.Load(), DropOther: c.other.Load(), ActionErrors: c.actionErr.Load()}
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
		c.other.Add(1)
	}
}

func (r *Runner) prefixes() []netip.Prefix {
	p := make([]netip.Prefix, len(r.cfg.Machine.Addrs))
	for i, a := range r.cfg.Machine.Addrs {
		p[i] = netip.PrefixFrom(a, r.cfg.PrefixLen)
	}
	return p
}

// openSockets: a receiver (unbound, so it sees multicast; bound to the
// device, joined to 224.0.0.18) and a sender bound to the primary address (so
// the kernel's source is the one the checksum covers), TTL 255, no loopback.
func (r *Runner) openSockets() (rx, tx int, err error) {
	mreq := &unix.IPMreqn{Multiaddr: Group.As4(), Ifindex: int32(r.ifi.Index)}
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
		{"SO_BINDTODEVICE", unix.BindToDevice(rx, r.ifi.Name)},
		{"IP_ADD_MEMBERSHIP 224.0.0.18", unix.SetsockoptIPMreqn(rx, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq)},
		{"bind primary", unix.Bind(tx, &unix.SockaddrInet4{Addr: r.cfg.Machine.Primary.As4()})},
		{"SO_BINDTODEVICE tx", unix.BindToDevice(tx, r.ifi.Name)},
		{"IP_MULTICAST_IF", unix.SetsockoptIPMreqn(tx, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(r.ifi.Index)})},
		{"IP_MULTICAST_TTL", unix.SetsockoptInt(tx, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, TTL)},
		{"IP_MULTICAST_LOOP", unix.SetsockoptInt(tx, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0)},
		// Adverts must go out even when the kernel's queue is busy.
		{"IP_TOS", unix.SetsockoptInt(tx, unix.IPPROTO_IP, unix.IP_TOS, 0xc0)},
	}
	for _, s := range steps {
		if s.err != nil {
			unix.Close(rx)
			unix.Close(tx)
			return -1, -1, fmt.Errorf("vrrp: %s on %s: %w", s.what, r.ifi.Name, s.err)
		}
	}
	return rx, tx, nil
}

// Run implements role.Elector. It returns after resigning when ctx is done.
func (r *Runner) Run(ctx context.Context) error {
	rx, tx, err := r.openSockets()
	if err != nil {
		return err
	}
	defer unix.Close(tx)
	arp, err := vipnet.OpenARP(r.ifi)
	if err != nil {
		unix.Close(rx)
		return err
	}
	r.mu.Lock()
	r.arp = arp
	r.mu.Unlock()
	defer arp.Close()

	// A previous instance that crashed may have left the address behind.
	for _, p := range r.prefixes() {
		if err := vipnet.DelAddr(r.ifi.Index, p); err != nil {
			r.log.Warn("vrrp: removing stale virtual address", "err", err)
		}
	}

	adverts := make(chan Event, 64)
	readerDone := make(chan struct{})
	go func() { defer close(readerDone); r.read(rx, adverts) }()
	defer func() {
		// Shutting the socket down wakes the blocked recvfrom.
		unix.Shutdown(rx, unix.SHUT_RDWR)
		unix.Close(rx)
		<-readerDone
	}()

	start := time.Now()
	now := func() time.Duration { return time.Since(start) }
	m := New(r.cfg.Machine)
	out := make([]Action, 0, 8)
	pkt := make([]byte, 0, HeaderLen+4*MaxAddrs)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var dl time.Duration
	handle := func(ev Event) {
		out, dl = m.Handle(now(), ev, out[:0])
		r.do(m, tx, out, &pkt)
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
		case c := <-r.ctl:
			handle(c.ev)
		default:
			pending = false
		}
	}
	handle(Event{Kind: EvStartup})
	for {
		select {
		case <-ctx.Done():
			handle(Event{Kind: EvShutdown})
			return nil
		case ev := <-adverts:
			handle(ev)
		case c := <-r.ctl:
			handle(c.ev)
		case <-timer.C:
			handle(Event{Kind: EvTimer})
		}
	}
}

// read parses each packet in place and hands over only valid adverts; the
// buffer is reused, nothing is allocated per packet.
func (r *Runner) read(fd int, adverts chan<- Event) {
	buf := make([]byte, 1500)
	want := &Expect{VRID: r.cfg.Machine.VRID, Addrs: r.cfg.Machine.Addrs}
	var a Advertisement
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		if n == 0 {
			return // shut down
		}
		// Raw IPv4 sockets deliver the IP header: TTL and addresses come
		// from it (no IP_RECVTTL needed).
		b := buf[:n]
		if len(b) < 20 || b[0]>>4 != 4 {
			r.c.short.Add(1)
			continue
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			r.c.short.Add(1)
			continue
		}
		ttl := int(b[8])
		src := netip.AddrFrom4([4]byte(b[12:16]))
		dst := netip.AddrFrom4([4]byte(b[16:20]))
		if src == r.cfg.Machine.Primary {
			continue
		}
		if err := Receive(&a, b[ihl:], src, dst, ttl, want); err != nil {
			r.count(err)
			continue
		}
		r.c.rx.Add(1)
		select {
		case adverts <- Event{Kind: EvAdvert, Src: src, Priority: a.Priority, Interval: a.IntervalDuration()}:
		default:
			r.c.other.Add(1) // owner loop is behind: drop and count, never block
		}
	}
}

func (r *Runner) do(m *Machine, tx int, acts []Action, pkt *[]byte) {
	mc := &r.cfg.Machine
	dst := &unix.SockaddrInet4{Addr: Group.As4()}
	for _, a := range acts {
		var err error
		switch a.Kind {
		case ActSendAdvert:
			adv := Advertisement{VRID: mc.VRID, Priority: a.Priority, Interval: Centiseconds(mc.AdvertInterval)}
			_ = adv.SetAddresses(mc.Addrs) // validated in NewRunner
			*pkt, err = adv.AppendChecksummed((*pkt)[:0], mc.Primary, Group)
			if err == nil {
				err = unix.Sendto(tx, *pkt, 0, dst)
			}
			if err == nil {
				r.c.tx.Add(1)
			}
		case ActAddVIP:
			for _, p := range r.prefixes() {
				if e := vipnet.AddAddr(r.ifi.Index, p); e != nil {
					err = e
				}
			}
		case ActRemoveVIP:
			for _, p := range r.prefixes() {
				if e := vipnet.DelAddr(r.ifi.Index, p); e != nil {
					err = e
				}
			}
		case ActGARP:
			r.mu.Lock()
			for _, v := range mc.Addrs {
				if e := r.arp.Gratuitous(v, a.Count); e != nil {
					err = e
				}
			}
			r.mu.Unlock()
			r.c.garps.Add(uint64(a.Count * len(mc.Addrs)))
		case ActBecomeMaster, ActBecomeBackup, ActBecomeInit:
			r.report(m, a)
		}
		if err != nil {
			r.c.actionErr.Add(1)
			r.log.Error("vrrp: action failed", "action", a.Kind, "err", err)
		}
	}
	// The hold input changes the role without a state change.
	r.mu.Lock()
	stale := r.current.Role != roleOf(m)
	r.mu.Unlock()
	if stale {
		reason := "initialized from the group (hold released)"
		if m.Held() {
			reason = "held: not yet initialized from the group"
		}
		r.report(m, Action{Reason: reason})
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

func (r *Runner) report(m *Machine, a Action) {
	ch := role.Change{Role: roleOf(m), Protocol: "vrrp", State: m.State().String(), Reason: a.Reason, Peer: a.Peer}
	r.mu.Lock()
	r.current = ch
	r.active = ch.Role == role.Active
	r.mu.Unlock()
	r.c.changes.Add(1)
	r.log.Info("vrrp: role change", "role", ch.Role, "state", ch.State, "reason", ch.Reason, "priority", m.Priority())
	for {
		select {
		case r.changes <- ch:
			return
		default:
			select { // full: drop the oldest, the latest always gets through
			case <-r.changes:
			default:
			}
		}
	}
}
