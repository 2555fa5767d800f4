//go:build linux

package vrrp

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/role/runner"
	"golang.org/x/sys/unix"
)

// loLab is a fresh network namespace, entered by the test's locked thread
// (never given back: the thread ends with the test), with lo up: a sender
// that writes whole IP packets and the two sockets of a lazy reading, as
// raw protocol-112 sockets on lo, with the kernel running the filters.
type loLab struct {
	t          *testing.T
	send       int
	polled     int
	z          *lazy
	src, dst   netip.Addr
	vip        netip.Addr
	sentinelID uint16
}

func newLoLab(t *testing.T) *loLab {
	if testing.Short() {
		t.Skip("needs a network namespace (not in -short)")
	}
	runtime.LockOSThread() // not unlocked: the thread leaves with the namespace
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		t.Skipf("unshare(CLONE_NEWNET): %v (needs root)", err)
	}
	ctl, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ctl)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		t.Fatal(err)
	}
	ifr.SetUint16(unix.IFF_UP)
	if err := unix.IoctlIfreq(ctl, unix.SIOCSIFFLAGS, ifr); err != nil {
		t.Fatal(err)
	}
	l := &loLab{t: t, src: netip.MustParseAddr("127.0.0.2"), dst: netip.MustParseAddr("127.0.0.1"),
		vip: netip.AddrFrom4([4]byte{10, 77, 0, 100})}
	if l.send, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW); err != nil {
		t.Fatal(err)
	}
	raw := func() int {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, IPProtocol)
		if err != nil {
			t.Fatal(err)
		}
		return fd
	}
	l.polled = raw()
	lz := raw()
	r := &Runner{cfg: RunnerConfig{Machine: Config{VRID: 51, Addrs: []netip.Addr{l.vip}}},
		sh: &runner.Shell{Log: slog.New(slog.DiscardHandler)}}
	start := time.Now()
	l.z = r.newLazy(lz, l.polled, func() time.Duration { return time.Since(start) })
	if err := l.z.attach(lz, nil, true); err != nil {
		t.Fatal(err)
	}
	if stamps, err := lazyOptions(lz); err != nil || !stamps {
		t.Fatalf("lazy socket options: stamps %v, %v", stamps, err)
	}
	t.Cleanup(func() { unix.Close(l.send); unix.Close(l.polled); unix.Close(lz) })
	return l
}

// packet is an advert from l.src to l.dst with priority prio and IP id.
func (l *loLab) packet(prio uint8, id uint16) []byte {
	a := Advertisement{VRID: 51, Priority: prio, Interval: 10, Count: 1}
	a.Addrs[0] = l.vip
	pay, err := a.AppendChecksummed(nil, l.src, l.dst)
	if err != nil {
		l.t.Fatal(err)
	}
	h := make([]byte, 20, 20+len(pay))
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(pay)))
	binary.BigEndian.PutUint16(h[4:], id)
	h[8], h[9] = TTL, IPProtocol
	s, d := l.src.As4(), l.dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	return append(h, pay...)
}

func (l *loLab) sendPkt(p []byte) {
	l.t.Helper()
	if err := runner.SendTo(l.send, p, l.dst, 0); err != nil {
		l.t.Fatal(err)
	}
}

// ids sends a sentinel (priority 1: never a template here) behind what was
// sent, waits for it on the polled socket, and returns the IP ids of
// everything both sockets hold, the sentinel left out.
func (l *loLab) ids() (polled, lazy []uint16) {
	l.t.Helper()
	polled = l.sync()
	return polled, l.read(l.z.fd, false, 0)
}

// sync sends a sentinel behind what was sent and returns, once it has
// arrived, the ids the polled socket held before it.
func (l *loLab) sync() []uint16 {
	l.t.Helper()
	l.sentinelID++
	sid := 0xf000 | l.sentinelID
	l.sendPkt(l.packet(1, sid))
	return l.read(l.polled, true, sid)
}

func (l *loLab) read(fd int, wait bool, sid uint16) (got []uint16) {
	l.t.Helper()
	buf := make([]byte, 1500)
	for end := time.Now().Add(5 * time.Second); ; {
		n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if err == unix.EAGAIN {
			if !wait || time.Now().After(end) {
				if wait {
					l.t.Fatal("the sentinel did not arrive on the polled socket")
				}
				return got
			}
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			l.t.Fatal(err)
		}
		id := binary.BigEndian.Uint16(buf[4:n])
		if id == sid {
			return got
		}
		got = append(got, id)
	}
}

// The kernel runs the filters as the interpreter does: with a template,
// its repeats go to the lazy socket only, anything else to the polled one;
// without, everything to the polled one.
func TestLazyKernelFilters(t *testing.T) {
	l := newLoLab(t)
	l.sendPkt(l.packet(200, 1))
	if p, z := l.ids(); len(p) != 1 || len(z) != 0 {
		t.Fatalf("no template: polled %v lazy %v, want [1] []", p, z)
	}
	tmpl := l.packet(200, 2)
	l.z.set(tmpl, Event{Kind: EvAdvert, Src: l.src, Priority: 200, Interval: 100 * time.Millisecond})
	l.sendPkt(l.packet(200, 3))
	l.sendPkt(l.packet(201, 4))
	l.sendPkt(l.packet(0, 5))
	shorter := l.packet(200, 6)
	shorter = shorter[:len(shorter)-1]
	binary.BigEndian.PutUint16(shorter[2:], uint16(len(shorter)))
	l.sendPkt(shorter)
	if p, z := l.ids(); !equalIDs(p, 4, 5, 6) || !equalIDs(z, 3) {
		t.Fatalf("template of priority 200: polled %v lazy %v, want [4 5 6] [3]", p, z)
	}
	l.z.set(nil, Event{})
	l.sendPkt(l.packet(200, 7))
	if p, z := l.ids(); !equalIDs(p, 7) || len(z) != 0 {
		t.Fatalf("template cleared: polled %v lazy %v, want [7] []", p, z)
	}
}

// During a swap of the template (the lazy socket's filter first), a
// repeat of the new template reaches both sockets, one of the old neither:
// at worst a packet is read twice (the late copy moves nothing: arrival)
// or one advert is lost (the Master_Down_Interval tolerates three).
func TestLazySwap(t *testing.T) {
	l := newLoLab(t)
	old := Event{Kind: EvAdvert, Src: l.src, Priority: 200, Interval: 100 * time.Millisecond}
	l.z.set(l.packet(200, 1), old)
	l.z.between = func() {
		l.sendPkt(l.packet(150, 10)) // the new template
		l.sendPkt(l.packet(200, 11)) // the old one
	}
	nev := old
	nev.Priority = 150
	l.z.set(l.packet(150, 2), nev)
	l.z.between = nil
	p, z := l.ids()
	if !equalIDs(p, 10) || !equalIDs(z, 10) {
		t.Fatalf("during the swap: polled %v lazy %v, want the new template's packet (10) on both, the old one's (11) on neither", p, z)
	}
	l.sendPkt(l.packet(150, 12))
	l.sendPkt(l.packet(200, 13))
	if p, z := l.ids(); !equalIDs(p, 13) || !equalIDs(z, 12) {
		t.Fatalf("after the swap: polled %v lazy %v, want [13] [12]", p, z)
	}
}

// drain hands the machine a run of equal adverts as one event at the
// newest one's arrival, counts them all, drops invalid ones (counted), and
// allocates nothing.
func TestLazyDrain(t *testing.T) {
	l := newLoLab(t)
	ev := Event{Kind: EvAdvert, Src: l.src, Priority: 200, Interval: 100 * time.Millisecond}
	tmpl := l.packet(200, 1)
	l.z.set(tmpl, ev)
	var got []Event
	handle := func(e rxEvent) { got = append(got, e.Event) }
	l.waitStamps(tmpl)
	got = got[:0]
	a0, rx0 := l.z.adverts.Load(), l.z.r.sh.Rx.Load()
	for i := range 12 { // more than a batch
		l.sendPkt(l.packet(200, uint16(100+i)))
	}
	bad := l.packet(200, 200)
	bad[8] = 64 // TTL: the lazy filter does not match it either
	l.sendPkt(bad)
	l.sync()
	before := l.z.now()
	time.Sleep(20 * time.Millisecond)
	l.z.drain(handle)
	if len(got) != 1 || got[0].Src != l.src || got[0].Priority != 200 || got[0].Interval != ev.Interval {
		t.Fatalf("handed %+v, want one advert from %v at 200", got, l.src)
	}
	if at := got[0].Arrived; at <= 0 || at > before {
		t.Errorf("arrival %v: want the kernel's stamp, before %v (when the test read it)", at, before)
	}
	if n := l.z.adverts.Load() - a0; n != 12 {
		t.Errorf("%d adverts counted, want 12", n)
	}
	if n := l.z.r.sh.Rx.Load() - rx0; n != 12 {
		t.Errorf("RxAdverts %d, want 12", n)
	}
	// A datagram the filter let through that fails validation (queued
	// before a swap, or forged to match): dropped and counted.
	forged := bytes.Clone(tmpl)
	forged[20+1] = 52 // VRID: checksum and VRID now wrong
	l.z.set(forged, ev)
	l.sendPkt(forged)
	l.sync()
	got = got[:0]
	l.z.drain(handle)
	if len(got) != 0 || l.z.r.c.checksum.Load()+l.z.r.c.vrid.Load() != 1 {
		t.Errorf("forged advert: handed %+v, checksum drops %d, VRID drops %d", got, l.z.r.c.checksum.Load(), l.z.r.c.vrid.Load())
	}
	l.z.set(tmpl, ev)
	p := l.packet(200, 7)
	nop := func(rxEvent) {}
	if a := testing.AllocsPerRun(50, func() {
		l.sendPkt(p)
		l.z.drain(nop)
	}); a != 0 {
		t.Errorf("send and drain: %v allocations, want 0", a)
	}
	if l.z.adverts.Load()-a0 < 12+50 {
		t.Errorf("%d adverts read, want every one sent", l.z.adverts.Load())
	}
}

func equalIDs(got []uint16, want ...uint16) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// The read path at once allocates nothing either: the polled socket's
// reader (parse, copy of the packet for the template) and the owner's
// Handle with the template check.
func TestLazyReadPathAllocs(t *testing.T) {
	l := newLoLab(t)
	r := l.z.r
	ch := make(chan rxEvent, 1)
	read := r.reader(ch)
	pkt := l.packet(200, 1)
	m := New(Config{VRID: 51, Priority: 100, AdvertInterval: 100 * time.Millisecond, Primary: l.dst, Addrs: []netip.Addr{l.vip}})
	o := &owner{m: m, lz: l.z}
	out := make([]Action, 0, 8)
	out, _ = o.Handle(time.Second, rxEvent{Event: Event{Kind: EvStartup}}, out[:0])
	now := 2 * time.Second
	if a := testing.AllocsPerRun(100, func() {
		read(pkt, l.src)
		ev := <-ch
		now += 100 * time.Millisecond
		out, _ = o.Handle(now, ev, out[:0])
	}); a != 0 {
		t.Errorf("read and handle an advert: %v allocations, want 0", a)
	}
	if l.z.n == 0 || !m.Follows(l.z.follows) {
		t.Fatal("the advert did not become the template")
	}
}

// The lazy queue is bounded: a flood beyond it is dropped by the kernel
// and counted (SO_RXQ_OVFL); packets its filter rejects are not.
func TestLazyOverflowCounted(t *testing.T) {
	l := newLoLab(t)
	ev := Event{Kind: EvAdvert, Src: l.src, Priority: 200, Interval: 100 * time.Millisecond}
	l.z.set(l.packet(200, 1), ev)
	for i := range 20 {
		l.sendPkt(l.packet(150, uint16(i))) // rejected by the lazy filter
	}
	l.sendPkt(l.packet(200, 99))
	l.sync()
	l.z.drain(func(rxEvent) {})
	if d := l.z.dropped.Load(); d != 0 {
		t.Fatalf("%d drops counted for packets the filter rejected", d)
	}
	const flood = 1000
	p := l.packet(200, 2)
	for range flood {
		l.sendPkt(p)
	}
	l.sync()
	l.z.drain(func(rxEvent) {})
	// The kernel reports its drop count with the next datagram queued.
	l.sendPkt(p)
	l.sync()
	l.z.drain(func(rxEvent) {})
	read, dropped := l.z.adverts.Load()-2, l.z.dropped.Load()
	t.Logf("flood of %d: %d read, %d dropped", flood, read, dropped)
	if dropped == 0 || read >= flood || read+dropped < flood {
		t.Errorf("flood of %d: %d read, %d dropped: want the queue bounded and every drop counted", flood, read, dropped)
	}
}

// A wall-clock step between the arrival and the read (NTP stepping the
// clock soon after boot): the stamp's age is off by the step. A step
// forward must not make a queued advert look seconds older than it is (it
// would then move nothing and the backup would take over from a live
// master); the advert counts as arriving when read.
func TestLazyDrainWallStep(t *testing.T) {
	l := newLoLab(t)
	base := l.z.now
	l.z.now = func() time.Duration { return base() + time.Minute } // far from 0
	ev := Event{Kind: EvAdvert, Src: l.src, Priority: 200, Interval: 100 * time.Millisecond}
	l.z.set(l.packet(200, 1), ev)
	var got []Event
	handle := func(e rxEvent) { got = append(got, e.Event) }
	l.z.drain(handle) // a read before the step: nothing queued
	l.sendPkt(l.packet(200, 100))
	l.sync()
	const step = 2 * time.Second
	l.z.wall = func() int64 { return time.Now().UnixNano() + int64(step) }
	before := l.z.now()
	l.z.drain(handle)
	if len(got) != 1 {
		t.Fatalf("handed %+v, want the queued advert", got)
	}
	if at := got[0].Arrived; at != 0 && before-at > step/2 {
		t.Fatalf("the advert counts as arrived %v before the read: the wall clock's %v step was taken for its age", before-at, step)
	}
}

// waitStamps waits until the kernel stamps arrivals: it turns stamping on
// for the whole system in deferred work after the first socket asks, and
// until then a datagram is stamped when it is read (later than true: the
// safe side in the product, a wrong answer for a test of the stamps).
func (l *loLab) waitStamps(tmpl []byte) {
	l.t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		l.sendPkt(tmpl)
		l.sync()
		mark := l.z.now()
		time.Sleep(2 * time.Millisecond)
		var at time.Duration
		l.z.drain(func(e rxEvent) { at = e.Arrived })
		if at > 0 && at < mark {
			return
		}
	}
	l.t.Fatal("the kernel never stamped an arrival before its read")
}
