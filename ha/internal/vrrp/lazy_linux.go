//go:build linux

package vrrp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/hagent/hagent/ha/internal/deadline"
	"golang.org/x/sys/unix"
)

// A backup woken by every advertisement of its master wakes ten times a
// second at the usual 100 ms, each wake-up dearer in Go than in
// keepalived's C loop (docs/performance.md, "Idle cost"); most of them
// tell it nothing but that the master is still there. The kernel can
// keep those: an advertisement equal to the one the backup follows
// (filter.go) is queued on a second raw socket that is not in the
// runtime's poller, so its arrival wakes no thread, and stamped with its
// arrival time. The owner loop reads that socket whenever it is awake
// anyway, and always before it acts on the Master_Down_Timer, and hands
// the machine the newest of those adverts at its arrival time: the timer
// is where it would have been, without the wake-ups. Everything else
// (another sender, a new priority or interval, a resignation, any packet
// while not Backup) stays on the polled socket and is handled at once.

// lazyBatch is how many datagrams one recvmmsg takes; a short batch proves
// the queue empty.
const lazyBatch = 8

// lazyRcvBuf is the lazy socket's SO_RCVBUF (the kernel doubles it): room
// for some fifty adverts of accounted size, several Master_Down_Intervals
// (about 3.6 adverts each), and the socket is read at every one at the
// latest. Were it ever full, the kernel would drop the newest, which could
// make a live master look silent: counted (SO_RXQ_OVFL, Stats.LazyDropped;
// the kernel reports its count with the next datagram it queues).
const lazyRcvBuf = 32 << 10

// lazyCtl is the control room per datagram in uint64s (aligned for
// cmsghdr): SO_TIMESTAMPNS_NEW (16 bytes) and SO_RXQ_OVFL (4), with slack.
const lazyCtl = 16

// lazy is the backup's second socket and the two filters (owner goroutine
// only, but the counters).
type lazy struct {
	fd, rx int // the lazy socket; the polled one, for its filter
	r      *Runner
	now    func() time.Duration // the machine's clock
	wall   func() int64         // Unix ns: the clock the kernel stamps arrivals on
	step   deadline.WallStep    // a step of the wall clock between arrival and read
	steady bool                 // this read's stamps may be placed by their age
	want   Expect
	a      Advertisement

	tmpl    [MaxTemplate]byte
	n       int      // the template's length; 0: none
	follows Event    // the advert the template is
	pending bool     // the lazy socket may hold datagrams: a template is or was set
	failed  bool     // a filter could not be attached: everything is read at once
	bpf     *bpfLazy // the kernel keeps the timer too (lazy_bpf_linux.go); nil: it cannot
	prog    []Insn
	sf      [MaxFilter]unix.SockFilter
	// between, if set (tests), is called between the two filters of a swap.
	between func()

	hdrs [lazyBatch]unix.Mmsghdr
	iovs [lazyBatch]unix.Iovec
	bufs [lazyBatch][MaxTemplate]byte
	ctls [lazyBatch][lazyCtl]uint64

	adverts, dropped atomic.Uint64 // read lazily; dropped by the kernel (SO_RXQ_OVFL)
}

// openLazy opens the lazy socket beside the polled one (rx), in the same
// way (device, group), with the filter that accepts nothing until a
// template is set. The descriptor is non-blocking and never given to the runtime's poller.
func (r *Runner) openLazy(rx int, now func() time.Duration) (*lazy, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, IPProtocol)
	if err != nil {
		return nil, fmt.Errorf("vrrp: raw socket (protocol 112) for the lazy reading: %w", err)
	}
	z := r.newLazy(fd, rx, now)
	ferr := z.attach(fd, nil, true) // first: nothing is queued before
	stamps, err := lazyOptions(fd)
	mreq := &unix.IPMreqn{Multiaddr: Group.As4(), Ifindex: int32(r.sh.Ifi.Index)}
	steps := []struct {
		what string
		err  error
	}{
		{"SO_ATTACH_FILTER", ferr},
		{"SO_BINDTODEVICE", unix.BindToDevice(fd, r.sh.Ifi.Name)},
		{"IP_ADD_MEMBERSHIP 224.0.0.18", unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq)},
		{"SO_RCVBUF", err},
	}
	for _, s := range steps {
		if s.err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("vrrp: lazy socket: %s on %s: %w", s.what, r.sh.Ifi.Name, s.err)
		}
	}
	if !stamps {
		z.failed = true
		r.sh.Log.Info("vrrp: the kernel does not stamp arrivals (SO_TIMESTAMPNS_NEW); every advert is read at once")
	}
	return z, nil
}

// newLazy is the reading state of the lazy socket fd beside the polled
// socket rx.
func (r *Runner) newLazy(fd, rx int, now func() time.Duration) *lazy {
	z := &lazy{fd: fd, rx: rx, r: r, now: now, want: Expect{VRID: r.cfg.Machine.VRID, Addrs: r.cfg.Machine.Addrs},
		prog: make([]Insn, 0, MaxFilter), wall: func() int64 { return time.Now().UnixNano() }}
	z.step.Steady(z.wall(), int64(now())) // the baseline: stamps come after it
	for i := range z.hdrs {
		z.iovs[i] = unix.Iovec{Base: &z.bufs[i][0]}
		z.iovs[i].SetLen(MaxTemplate)
		z.hdrs[i].Hdr.Iov = &z.iovs[i]
		z.hdrs[i].Hdr.SetIovlen(1)
		z.hdrs[i].Hdr.Control = (*byte)(unsafe.Pointer(&z.ctls[i][0]))
	}
	return z
}

// lazyOptions sets the queue's bound, the arrival stamps and the drop
// count (best effort). Without stamps (kernels before 5.1) an advert read
// late would count from when it was read, which delays a takeover: the
// caller then reads everything at once.
func lazyOptions(fd int) (stamps bool, err error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, lazyRcvBuf); err != nil {
		return false, err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1)
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, 1) == nil, nil
}

func (z *lazy) close() { unix.Close(z.fd) }

// attach compiles and attaches one of the two programs (filter.go).
func (z *lazy) attach(fd int, tmpl []byte, match bool) error {
	z.prog = AppendFilter(z.prog[:0], tmpl, match)
	for i, in := range z.prog {
		z.sf[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(z.prog)), Filter: &z.sf[0]})
}

// follow runs after the machine handled ev (owner goroutine): an advert it
// follows, read at once, becomes the template; a template the machine no
// longer follows (another master, a new priority, a state change, a
// priority of ours that now preempts it) is cleared, and every packet is
// read at once again.
func (z *lazy) follow(m *Machine, ev *rxEvent) {
	switch {
	case z.failed:
	case ev.Kind == EvAdvert && ev.n > 0 && m.Follows(ev.Event):
		if !z.same(ev.pkt[:ev.n]) {
			z.set(ev.pkt[:ev.n], ev.Event)
		}
	case z.n > 0 && !m.Follows(z.follows):
		z.set(nil, Event{})
	}
}

// same reports whether pkt equals the template in what the filters
// compare.
func (z *lazy) same(pkt []byte) bool {
	t := z.tmpl[:z.n]
	return len(pkt) == len(t) && pkt[0] == t[0] && string(pkt[2:4]) == string(t[2:4]) &&
		string(pkt[8:10]) == string(t[8:10]) && string(pkt[12:]) == string(t[12:])
}

// set swaps both filters to tmpl (nil: none). The lazy socket's goes
// first: packets equal to the new template then reach both sockets until
// the polled one excludes them (delivered twice at worst: the late copy
// counts from its arrival and moves nothing), and packets equal to the
// old one reach neither (one advert lost at worst, which the
// Master_Down_Interval's three tolerate).
func (z *lazy) set(tmpl []byte, ev Event) {
	z.n = copy(z.tmpl[:], tmpl)
	z.follows = ev
	var t []byte
	if z.n > 0 {
		t = z.tmpl[:z.n]
		z.pending = true
	}
	err := z.attachLazy(t)
	if err == nil {
		if z.between != nil {
			z.between()
		}
		err = z.attach(z.rx, t, false)
	}
	if err != nil {
		z.eager(err)
	}
}

// eager gives up the lazy reading after a filter the kernel refused: every
// advert is read at once, as without the lazy socket. The polled socket
// must stop excluding the template whatever else fails (with its copies
// read by nobody, a live master would look dead): if the kernel has no
// room even for the program that accepts everything, its filter is
// detached, which needs none.
func (z *lazy) eager(err error) {
	z.failed, z.n = true, 0
	_ = z.attachLazy(nil)
	if z.attach(z.rx, nil, false) != nil {
		_ = unix.SetsockoptInt(z.rx, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
	}
	z.r.sh.Log.Error("vrrp: attaching the lazy reading's socket filter failed; every advert is read at once", "err", err)
}

// drain hands the machine what the lazy socket holds (owner goroutine, at
// every wake-up): each advert validated in full as the polled socket's
// are, a run of equal ones as one event at the newest one's arrival time.
// Allocates nothing.
func (z *lazy) drain(handle func(rxEvent)) {
	z.bpf.drain(handle)
	if !z.pending {
		return
	}
	var ev rxEvent
	have := false
	for {
		for i := range z.hdrs {
			z.hdrs[i].Hdr.SetControllen(lazyCtl * 8)
			z.hdrs[i].Hdr.Flags = 0
		}
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(z.fd), uintptr(unsafe.Pointer(&z.hdrs[0])), lazyBatch,
			unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 { // EAGAIN: empty
			break
		}
		n := int(r)
		wall, now := z.wall(), z.now()
		z.steady = z.step.Steady(wall, int64(now))
		for i := range n {
			h := &z.hdrs[i]
			got, ok := z.parse(z.bufs[i][:min(int(h.Len), MaxTemplate)], h, wall, now)
			if !ok {
				continue
			}
			if have && got.Src == ev.Src && got.Priority == ev.Priority && got.Interval == ev.Interval {
				ev.Arrived = got.Arrived
				continue
			}
			if have {
				handle(ev)
			}
			ev, have = rxEvent{Event: got}, true
		}
		if n < lazyBatch {
			break
		}
	}
	if have {
		handle(ev)
	}
	if z.n == 0 {
		z.pending = false // cleared, and the socket is empty
	}
}

// parse validates one lazily read datagram like the polled socket's reader
// and places its kernel arrival time (the realtime clock, wall) on the
// machine's (now) by its age.
func (z *lazy) parse(b []byte, h *unix.Mmsghdr, wall int64, now time.Duration) (Event, bool) {
	if h.Hdr.Flags&unix.MSG_TRUNC != 0 || len(b) < 20 || b[0] != 0x45 {
		z.r.c.short.Add(1)
		return Event{}, false
	}
	stamp := z.cmsgs(h)
	src, dst := netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
	if err := Receive(&z.a, b[20:], src, dst, int(b[8]), &z.want); err != nil {
		z.r.count(err)
		return Event{}, false
	}
	z.r.sh.Rx.Add(1)
	z.adverts.Add(1)
	ev := Event{Kind: EvAdvert, Src: src, Priority: z.a.Priority, Interval: z.a.IntervalDuration()}
	if age := wall - stamp; z.steady && stamp != 0 && age >= 0 && age < int64(time.Minute) && now-time.Duration(age) > 0 {
		ev.Arrived = now - time.Duration(age)
	}
	return ev, true
}

// cmsgs returns the arrival time (Unix ns; 0: none) and records the
// socket's drop count.
func (z *lazy) cmsgs(h *unix.Mmsghdr) (stamp int64) {
	b := unsafe.Slice((*byte)(unsafe.Pointer(h.Hdr.Control)), int(h.Hdr.Controllen))
	hl := unix.CmsgLen(0)
	for len(b) >= hl {
		c := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		l := int(c.Len)
		if l < hl || l > len(b) {
			break
		}
		data := b[hl:l]
		if c.Level == unix.SOL_SOCKET {
			switch {
			case c.Type == unix.SO_TIMESTAMPNS_NEW && len(data) >= 16:
				// struct __kernel_timespec: two 64-bit fields on every arch.
				stamp = int64(binary.NativeEndian.Uint64(data))*1e9 + int64(binary.NativeEndian.Uint64(data[8:]))
			case c.Type == unix.SO_RXQ_OVFL && len(data) >= 4:
				z.dropped.Store(uint64(binary.NativeEndian.Uint32(data)))
			}
		}
		sp := unix.CmsgSpace(l - hl)
		if sp > len(b) {
			break
		}
		b = b[sp:]
	}
	return stamp
}
