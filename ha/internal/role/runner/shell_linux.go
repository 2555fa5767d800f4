//go:build linux

package runner

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/hagent/hagent/ha/internal/role"
	"github.com/hagent/hagent/ha/internal/role/vipnet"
	"golang.org/x/sys/unix"
)

// Config is what New needs from a protocol's RunnerConfig.
type Config struct {
	// Protocol is "vrrp" or "hsrp": the prefix of errors and log messages,
	// and role.Change.Protocol.
	Protocol  string
	Interface string     // the LAN interface the group shares
	Primary   netip.Addr // invalid: the interface's first IPv4 address
	// PrefixLen of the virtual addresses when added to the interface (32
	// if 0).
	PrefixLen int
	Logger    *slog.Logger // nil: slog.New(slog.DiscardHandler)
	// LogAttrs name the group in every log line, before "if"
	// (e.g. "vrid", 51).
	LogAttrs []any
	// State is the machine's initial state, reported by Current before Run.
	State string
}

// Shell is the protocol-independent half of a runner. A runner keeps it in
// an unexported field and forwards role.Elector's Changes and Current to it.
// All methods are safe from any goroutine.
type Shell struct {
	Protocol string
	Ifi      *net.Interface
	Primary  netip.Addr // Config.Primary, or the interface's first IPv4 address
	Log      *slog.Logger
	// Counters for the runner's Stats. The Shell counts role changes,
	// GARPs and action errors itself; the counters every runner keeps the
	// same way (messages received and sent, reclaims and those suppressed,
	// messages dropped for no protocol reason: an unclassified error, or
	// the owner loop being behind) live here too, so that the runners keep
	// only their protocol's drop reasons.
	RoleChanges, GARPs, ActionErrors    atomic.Uint64
	Rx, Tx, Reclaims, Suppressed, Other atomic.Uint64
	// VIPMAC, if set before Open, is the MAC GARP announces the virtual
	// addresses at (a virtual MAC); nil: the interface's own.
	VIPMAC net.HardwareAddr

	prefixLen int
	changes   chan role.Change

	mu      sync.Mutex
	current role.Change    // guarded by mu
	arp     *vipnet.ARP    // guarded by mu; set by Open
	sys     vipnet.Sysctls // guarded by mu; set by Open, restored by Close
}

// New resolves the interface and the primary address and checks the
// prefix length; it opens no socket.
func New(c Config) (*Shell, error) {
	ifi, err := net.InterfaceByName(c.Interface)
	if err != nil {
		return nil, fmt.Errorf("%s: interface %q: %w", c.Protocol, c.Interface, err)
	}
	primary := c.Primary
	if !primary.IsValid() {
		if primary, err = firstIPv4(c.Protocol, ifi); err != nil {
			return nil, err
		}
	}
	if c.PrefixLen == 0 {
		c.PrefixLen = 32
	}
	if c.PrefixLen < 1 || c.PrefixLen > 32 {
		return nil, fmt.Errorf("%s: prefix length %d out of range 1..32", c.Protocol, c.PrefixLen)
	}
	lg := c.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &Shell{Protocol: c.Protocol, Ifi: ifi, Primary: primary,
		Log:       lg.With(append(c.LogAttrs[:len(c.LogAttrs):len(c.LogAttrs)], "if", ifi.Name)...),
		prefixLen: c.PrefixLen, changes: make(chan role.Change, 16),
		current: role.Change{Role: role.Passive, Protocol: c.Protocol, State: c.State, Reason: "not started"}}, nil
}

func firstIPv4(protocol string, ifi *net.Interface) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: addresses of %s: %w", protocol, ifi.Name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if x, ok := netip.AddrFromSlice(n.IP); ok && x.Unmap().Is4() {
				return x.Unmap(), nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("%s: interface %s has no IPv4 address: configure one or set the primary address", protocol, ifi.Name)
}

// Changes implements role.Elector.
func (s *Shell) Changes() <-chan role.Change { return s.changes }

// Current implements role.Elector.
func (s *Shell) Current() role.Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// Publish makes ch the current role, counts and logs it (msg, then role,
// state, reason and attrs) and delivers it on Changes without blocking: a
// full channel drops its oldest change, the latest always gets through.
func (s *Shell) Publish(ch role.Change, msg string, attrs ...any) {
	s.mu.Lock()
	s.current = ch
	s.mu.Unlock()
	s.RoleChanges.Add(1)
	s.Log.Info(msg, append([]any{"role", ch.Role, "state", ch.State, "reason", ch.Reason}, attrs...)...)
	for {
		select {
		case s.changes <- ch:
			return
		default:
			select { // full: drop the oldest
			case <-s.changes:
			default:
			}
		}
	}
}

// HoldReason is the reason of a role change that SetHold made without a
// state change (Backup or Standby while held is Passive, see package role).
func HoldReason(held bool) string {
	if held {
		return "held: not yet initialized from the group"
	}
	return "initialized from the group (hold released)"
}

// Open opens the gratuitous ARP socket (Run's, closed by Close) and removes
// the virtual addresses a crashed predecessor may have left behind.
func (s *Shell) Open(stale ...netip.Addr) error {
	arp, err := vipnet.OpenARP(s.Ifi)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.arp = arp
	err = s.sys.AnnounceOwnAddress(s.Ifi.Name)
	s.mu.Unlock()
	if err != nil {
		// Not fatal: the election works without it, and a read-only
		// /proc/sys must not keep a member out of its group.
		s.Log.Warn(s.Protocol+": cannot make ARP requests name the interface's own address: a member stepping down after a spurious takeover may leave hosts on its MAC (set net.ipv4.conf."+s.Ifi.Name+".arp_announce = 2 by hand)", "err", err)
	} else {
		s.Log.Info(s.Protocol + ": arp_announce = 2 on " + s.Ifi.Name + " while the agent runs: ARP requests name the member's own address, not the virtual one")
	}
	for _, a := range stale {
		if err := vipnet.DelAddr(s.Ifi.Index, s.prefix(a)); err != nil {
			s.Log.Warn(s.Protocol+": removing stale virtual address", "err", err)
		}
	}
	return nil
}

// Close closes the gratuitous ARP socket (Announce fails from then on) and
// restores the interface's arp_announce; a failed restore is logged.
func (s *Shell) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.arp.Close()
	s.arp = nil // its descriptor number may be reused by the next socket
	if rerr := s.sys.Restore(); rerr != nil {
		// Logged here: the runners close in a defer, on their way out,
		// and a value left at 2 is the operator's to know about.
		s.Log.Warn(s.Protocol+": the election interface's ARP settings were not restored (set them back by hand)", "err", rerr)
		err = errors.Join(err, rerr)
	}
	return err
}

func (s *Shell) prefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, s.prefixLen) }

// AddVIP adds the virtual addresses to the interface and DelVIP removes
// them; every address is tried, the error is the last one.
func (s *Shell) AddVIP(addrs ...netip.Addr) error { return s.each(vipnet.AddAddr, addrs) }
func (s *Shell) DelVIP(addrs ...netip.Addr) error { return s.each(vipnet.DelAddr, addrs) }

func (s *Shell) each(f func(ifindex int, p netip.Prefix) error, addrs []netip.Addr) error {
	var err error
	for _, a := range addrs {
		if e := f(s.Ifi.Index, s.prefix(a)); e != nil {
			err = e
		}
	}
	return err
}

// GARP sends count gratuitous ARPs for each virtual address (after Open)
// and counts them as sent; the error is the last one.
func (s *Shell) GARP(count int, addrs ...netip.Addr) error {
	var err error
	s.mu.Lock()
	for _, a := range addrs {
		if e := s.arp.GratuitousFrom(a, s.VIPMAC, count); e != nil {
			err = e
		}
	}
	s.mu.Unlock()
	s.GARPs.Add(uint64(count * len(addrs)))
	return err
}

// Announce implements role.Elector's Announce with the configured count:
// only while Active (activeState is the protocol's name for it, for the
// error).
func (s *Shell) Announce(addrs []netip.Addr, count int, activeState string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current.Role != role.Active || s.arp == nil {
		return errors.New(s.Protocol + ": announce: not " + activeState + "; only the active agent answers for away nodes")
	}
	sent, err := s.arp.Announce(addrs, count)
	s.GARPs.Add(uint64(sent))
	return err
}

// Failed counts and logs an action of the machine that could not be done.
func (s *Shell) Failed(action any, err error) {
	s.ActionErrors.Add(1)
	s.Log.Error(s.Protocol+": action failed", "action", action, "err", err)
}

// rxBatch is how many datagrams one recvmmsg takes. An idle group's reader
// gets one per wake-up; what matters is that the batch has room for one
// more, so that a short batch proves the queue empty (see RX.read).
const rxBatch = 4

// RX is a runner's receiving socket, read through the runtime's network
// poller. A blocking recvfrom parks a whole thread in a system call: each
// packet then wakes that thread, the runtime's monitor thread and another
// thread to run the owner loop, about twenty context switches per
// advertisement where the poller needs one (an idle group receives ten a
// second).
//
// The reader goroutine stays in one RawConn.Read for the socket's life and
// hands each datagram on from inside its callback. Each Read begins by
// forgetting the readiness the poller recorded, so a Read per datagram
// must read before it may wait: one recvfrom for the datagram and a second
// one, EAGAIN, before every wait. In one Read a single recvmmsg does both.
type RX struct {
	f      *os.File
	rc     syscall.RawConn
	readFn func(fd uintptr) bool
	handle func(b []byte, src netip.Addr)
	done   bool // the socket failed or was shut down: Read returns

	bufs  [rxBatch][]byte
	iovs  [rxBatch]unix.Iovec
	names [rxBatch]unix.RawSockaddrInet4
	hdrs  [rxBatch]unix.Mmsghdr
}

// Reader makes fd non-blocking, hands it to the runtime's poller and calls
// handle in a goroutine of its own for each datagram received, with its
// payload (at most size bytes, the rest cut) and its IPv4 sender (invalid
// for any other family). b is reused after handle returns; a zero-length
// UDP datagram comes with its sender. handle must not block for long: the
// next datagrams wait behind it. The reading ends when the socket fails;
// the returned stop closes fd and waits for the goroutine to return. On
// error fd is closed. Allocates nothing per datagram.
func Reader(fd, size int, handle func(b []byte, src netip.Addr)) (stop func(), err error) {
	if size <= 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("reader buffer size %d: want > 0", size)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("making the socket non-blocking: %w", err)
	}
	// A non-blocking descriptor makes os.NewFile register it with the poller.
	f := os.NewFile(uintptr(fd), "runner")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("the socket's raw connection: %w", err)
	}
	x := &RX{f: f, rc: rc, handle: handle}
	for i := range x.hdrs {
		x.bufs[i] = make([]byte, size)
		x.iovs[i] = unix.Iovec{Base: &x.bufs[i][0]}
		x.iovs[i].SetLen(size)
		x.hdrs[i].Hdr.Iov = &x.iovs[i]
		x.hdrs[i].Hdr.SetIovlen(1)
	}
	x.readFn = x.read // one method value: nothing allocated per packet
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = x.rc.Read(x.readFn) // returns on close or failure
	}()
	return func() {
		f.Close()
		<-done
	}, nil
}

// read is the callback of the reader's one RawConn.Read: recvmmsg, hand
// every datagram on, and again while the batch came back full. A batch
// with room to spare proves the queue was empty at that moment; false then
// waits for the next readiness without another read. Nothing is lost: a
// datagram queued after that moment is a new readiness, which the poller
// records (or wakes this goroutine for) while it is still in the same
// Read. A datagram that arrived between the poller's wake-up and the
// recvmmsg is taken now and leaves a readiness with nothing behind it: the
// next call finds EAGAIN and waits again. The descriptor is non-blocking,
// so the call never waits in the kernel; RawSyscall spares the
// scheduler's system-call bookkeeping, which wakes the runtime's monitor
// thread at every call (and it then polls every 20 µs until the process
// is idle again): on an idle group that monitor was two thirds of the
// process's context switches.
func (x *RX) read(fd uintptr) bool {
	for !x.done {
		for i := range x.hdrs {
			h := &x.hdrs[i].Hdr
			h.Name = (*byte)(unsafe.Pointer(&x.names[i]))
			h.Namelen = unix.SizeofSockaddrInet4
			h.Flags = 0
		}
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&x.hdrs[0])), rxBatch,
			unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			x.done = true // closed or failed: the reader ends
			return true
		}
		n := int(r)
		for i := range n {
			h := &x.hdrs[i]
			var src netip.Addr
			if h.Hdr.Namelen >= unix.SizeofSockaddrInet4 && x.names[i].Family == unix.AF_INET {
				src = netip.AddrFrom4(x.names[i].Addr)
			}
			if h.Len == 0 && h.Hdr.Namelen == 0 {
				x.done = true // shut down: no datagram, no sender
				return true
			}
			x.handle(x.bufs[i][:h.Len], src)
		}
		if n < rxBatch {
			return false
		}
	}
	return true
}

// SendTo sends pkt on fd to dst (port: for UDP; 0 for raw IP), without
// waiting: RawSyscall and MSG_DONTWAIT (see RX.read for why). A full send
// buffer is rare (a periodic message of a few dozen bytes); only then the
// blocking, scheduler-aware call is made, so the packet is still sent.
// Allocates nothing.
func SendTo(fd int, pkt []byte, dst netip.Addr, port uint16) error {
	var sa unix.RawSockaddrInet4
	sa.Family = unix.AF_INET
	sa.Addr = dst.As4()
	sa.Port = port<<8 | port>>8 // network byte order
	var p unsafe.Pointer
	if len(pkt) > 0 {
		p = unsafe.Pointer(&pkt[0])
	}
	for {
		_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(p), uintptr(len(pkt)),
			unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&sa)), unix.SizeofSockaddrInet4)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: dst.As4(), Port: int(port)})
		}
		return e
	}
}
