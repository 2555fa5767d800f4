//go:build linux

package vrrp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/ebpf"
	"golang.org/x/sys/unix"
)

// kernelLo is a loLab whose lazy socket carries the kernel's timer, with
// a backup machine (priority 100) behind it.
func kernelLo(t *testing.T, hooks bpfHooks) (*loLab, *owner, *bpfLazy, chan rxEvent) {
	l := newLoLab(t)
	m := New(Config{VRID: 51, Priority: 100, AdvertInterval: 10 * time.Millisecond, Primary: l.dst, Addrs: []netip.Addr{l.vip}})
	b, err := newBPF(l.z, m, hooks)
	if err != nil {
		t.Skipf("the kernel refuses the eBPF timer here: %v", err)
	}
	t.Cleanup(b.close)
	l.z.bpf = b
	ring := make(chan rxEvent, 4)
	b.start(ring)
	return l, &owner{m: m, lz: l.z}, b, ring
}

// sendCounted sends the template's repeat with IP id (priority 200, 1 s
// adverts) and waits until the kernel has counted want adverts.
func sendCounted(t *testing.T, l *loLab, b *bpfLazy, id uint16, want uint64) {
	t.Helper()
	l.sendPkt(l.packetEvery(200, id, 100))
	for end := time.Now().Add(5 * time.Second); b.adverts() < want; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the kernel did not count advert %d within 5 s (%d of %d)", id, b.adverts(), want)
		}
	}
}

func waitRing(t *testing.T, ring chan rxEvent) rxEvent {
	t.Helper()
	select {
	case ev := <-ring:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("the kernel's timer did not ring within 10 s")
	}
	return rxEvent{}
}

// The kernel takes the template's repeats (neither socket queues them),
// and its timer rings no earlier than the newest one's arrival + the
// Master_Down_Interval; the owner, woken, hands the machine that advert
// at its arrival, and the machine takes over.
func TestKernelTimerLo(t *testing.T) {
	l, o, b, ring := kernelLo(t, bpfHooks{})
	m := o.m
	out := make([]Action, 0, 8)
	var dl time.Duration
	handle := func(e rxEvent) { out, dl = o.Handle(l.z.now(), e, out[:0]) }
	handle(rxEvent{Event: Event{Kind: EvStartup}})
	tmpl := l.packet(200, 1)
	ev := rxEvent{Event: Event{Kind: EvAdvert, Src: l.src, Priority: 200, Interval: 100 * time.Millisecond}}
	ev.n = uint8(copy(ev.pkt[:], tmpl))
	handle(ev)
	if !b.active || m.State() != Backup {
		t.Fatalf("following %v: kernel path active %v, state %v", l.src, b.active, m.State())
	}
	mdi := m.MasterDownInterval()
	if b.owns || dl >= NoDeadline {
		t.Fatalf("before any advert the kernel took: the process's deadline (%v) must stay armed", dl)
	}

	sent := l.z.now()
	l.sendPkt(l.packet(200, 5))
	if polled := l.sync(); len(polled) != 0 {
		t.Errorf("the polled socket got the template's repeat: ids %v", polled)
	}
	if lazy := l.read(l.z.fd, false, 0); len(lazy) != 0 {
		t.Errorf("the lazy socket queued the template's repeat: ids %v", lazy)
	}
	if n := b.adverts(); n != 1 {
		t.Errorf("the kernel counted %d adverts, want 1", n)
	}
	marker := waitRing(t, ring)
	rang := l.z.now()
	if rang-sent < mdi {
		t.Errorf("the kernel's timer rang %v after the advert was sent: before the Master_Down_Interval %v", rang-sent, mdi)
	}
	// As the loop does: the queued events first, then the one that woke it.
	var arrived time.Duration
	b.drain(func(e rxEvent) {
		arrived = e.Arrived
		if e.Kind != EvAdvert || e.Src != l.src || e.Priority != 200 {
			t.Errorf("handed %+v, want the template's advert", e.Event)
		}
		handle(e)
	})
	if arrived < sent || arrived > rang {
		t.Errorf("handed the advert at %v: want its arrival, between its sending (%v) and the ring (%v)", arrived, sent, rang)
	}
	now := l.z.now()
	handle(marker)
	if m.State() != Master {
		t.Fatalf("after the ring: %v, want Master (%v since the arrival, Master_Down_Interval %v)", m.State(), now-arrived, mdi)
	}
	if now < arrived+mdi {
		t.Errorf("took over %v after the arrival: before the Master_Down_Interval %v", now-arrived, mdi)
	}
	if b.active {
		t.Error("Master, yet the kernel path is still attached")
	}
}

// A ring wake-up, read by the owner, allocates nothing.
func TestKernelTimerAllocs(t *testing.T) {
	l, _, b, ring := kernelLo(t, bpfHooks{})
	if !b.attach(l.packet(200, 1)) {
		t.Fatal("attach failed")
	}
	p := l.packet(200, 2)
	nop := func(rxEvent) {}
	if a := testing.AllocsPerRun(5, func() {
		l.sendPkt(p)
		<-ring
		b.drain(nop)
	}); a != 0 {
		t.Errorf("a ring wake-up: %v allocations, want 0", a)
	}
	if n := b.rings.Load(); n < 6 {
		t.Errorf("%d ring wake-ups, want one per advert (6)", n)
	}
}

// The eBPF filter compares what the classic one compares (lazy.same is
// the rule): run by the kernel (BPF_PROG_TEST_RUN) on templates of every
// length class and on every one-byte change, length change and random
// mutation of them, it counts an advert exactly when same says the packet
// is the template.
func TestKernelFilterMatchesSame(t *testing.T) {
	b, err := newBPF(&lazy{}, New(Config{VRID: 51, Priority: 100, AdvertInterval: time.Second,
		Primary: netip.MustParseAddr("10.0.0.1"), Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.100")}}), bpfHooks{})
	if err != nil {
		t.Skipf("the kernel refuses the eBPF timer here: %v", err)
	}
	defer b.close()
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{28, 29, 30, 31, 40, 44, MaxTemplate} {
		tmpl := make([]byte, n)
		for i := range tmpl {
			tmpl[i] = byte(rnd.Uint32())
		}
		tmpl[0] = 0x45
		binary.BigEndian.PutUint16(tmpl[2:], uint16(n))
		prog, err := b.load(tmpl, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		z := &lazy{}
		z.n = copy(z.tmpl[:], tmpl)
		check := func(what string, pkt []byte) {
			t.Helper()
			frame := append([]byte{12: 0x08, 13: 0x00}, pkt...) // Ethernet, IPv4
			before := b.adverts()
			if _, err := ebpf.TestRun(prog, frame); err != nil {
				t.Fatal(err)
			}
			if got, want := b.adverts() > before, z.same(pkt); got != want {
				t.Errorf("template of %d bytes, %s: the kernel matched %v, want %v", n, what, got, want)
			}
		}
		check("itself", tmpl)
		for i := range tmpl {
			p := bytes.Clone(tmpl)
			p[i] ^= 0x5a
			check(fmt.Sprintf("byte %d changed", i), p)
		}
		check("one byte short", tmpl[:n-1])
		check("one byte more", append(bytes.Clone(tmpl), 0))
		for i := range 200 {
			p := bytes.Clone(tmpl)
			for range 1 + rnd.IntN(3) {
				p[rnd.IntN(n)] = byte(rnd.Uint32())
			}
			check(fmt.Sprintf("mutation %d", i), p)
		}
		unix.Close(prog)
	}
}

// The kernel's timer runs out and its call is taken by a wake-up of the
// owner that hands the machine nothing of its own (a stale tick of the
// loop's timer): the ring's goroutine then finds the ring empty and sends
// no marker. That wake-up must act on the call itself, or the loop stays
// armed at the watchdog's deadline, bpfWatchdog after the machine's: a
// dead master kept alive 2 s longer than the classic path would.
func TestKernelTimerCallWithoutMarker(t *testing.T) {
	l, o, b, ring := kernelLo(t, bpfHooks{})
	m := o.m
	out := make([]Action, 0, 8)
	var dl time.Duration
	handle := func(e rxEvent) { out, dl = o.Handle(l.z.now(), e, out[:0]) }
	handle(rxEvent{Event: Event{Kind: EvStartup}})
	// Adverts at 1 s: the first drain below comes well within the
	// Master_Down_Interval (3.6 s) on a loaded machine too.
	ev := rxEvent{Event: Event{Kind: EvAdvert, Src: l.src, Priority: 200, Interval: time.Second}}
	ev.n = uint8(copy(ev.pkt[:], l.packetEvery(200, 1, 100)))
	handle(ev)
	sendCounted(t, l, b, 5, 1)
	b.drain(handle) // a wake-up before the timer runs out: the kernel owns it
	if !b.owns || dl != m.deadline()+bpfWatchdog {
		t.Fatalf("after the handing: owns %v, loop deadline %v, machine's %v: want the watchdog's", b.owns, dl, m.deadline())
	}
	waitRing(t, ring) // the marker, lost: the wake-up below takes the call first
	b.drain(handle)   // a stale tick: nothing else is handled in it
	if m.State() != Master && dl > m.deadline() {
		t.Errorf("the kernel's timer ran out, yet the loop stays armed %v past the machine's deadline", dl-m.deadline())
	}
}

// A kernel that refuses both the new eBPF program and the classic filter
// in its place (their memory is charged to the socket, net.core.optmem_max,
// set tiny here in the test's own namespace) when our priority moves the
// Master_Down_Interval: the polled socket must not go on excluding the
// template while no filter reads its copies, or the live master's adverts
// reach nobody and the backup takes over from it.
func TestKernelTimerRefusedReattach(t *testing.T) {
	l, o, b, _ := kernelLo(t, bpfHooks{})
	m := o.m
	out := make([]Action, 0, 8)
	var handed []rxEvent
	handle := func(e rxEvent) { out, _ = o.Handle(l.z.now(), e, out[:0]) }
	handle(rxEvent{Event: Event{Kind: EvStartup}})
	ev := rxEvent{Event: Event{Kind: EvAdvert, Src: l.src, Priority: 200, Interval: 100 * time.Millisecond}}
	ev.n = uint8(copy(ev.pkt[:], l.packet(200, 1)))
	handle(ev)
	if !b.active {
		t.Fatal("the kernel path is not attached")
	}
	if err := os.WriteFile("/proc/sys/net/core/optmem_max", []byte("64"), 0); err != nil {
		t.Skipf("net.core.optmem_max in the test's namespace: %v", err)
	}
	mdi := m.MasterDownInterval()
	handle(rxEvent{Event: Event{Kind: EvPriority, Priority: 150}})
	if m.MasterDownInterval() == mdi || !b.off.Load() {
		t.Fatalf("Master_Down_Interval %v → %v, kernel path off %v: want a re-attach the kernel refused", mdi, m.MasterDownInterval(), b.off.Load())
	}
	l.sendPkt(l.packet(200, 7))
	polled := l.sync()
	l.z.drain(func(e rxEvent) { handed = append(handed, e); handle(e) })
	if !equalIDs(polled, 7) && len(handed) == 0 {
		t.Fatalf("the master's advert reached neither socket (polled %v, lazily handed %d): a live master looks dead", polled, len(handed))
	}
}

// Stats is read by other goroutines (the console's) while the owner may
// give the kernel path up: a data race unless what it reads is atomic
// (run with -race).
func TestKernelTimerStatsWhileFallingBack(t *testing.T) {
	l, o, b, _ := kernelLo(t, bpfHooks{})
	r := l.z.r
	r.lz.Store(l.z)
	out := make([]Action, 0, 8)
	handle := func(e rxEvent) { out, _ = o.Handle(l.z.now(), e, out[:0]) }
	handle(rxEvent{Event: Event{Kind: EvStartup}})
	ev := rxEvent{Event: Event{Kind: EvAdvert, Src: l.src, Priority: 200, Interval: 100 * time.Millisecond}}
	ev.n = uint8(copy(ev.pkt[:], l.packet(200, 1)))
	handle(ev)
	if !r.Stats().KernelTimer {
		t.Fatal("the kernel path is not in use")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			_ = r.Stats()
		}
	}()
	b.fault("a test's fault", nil)
	<-done
	if r.Stats().KernelTimer {
		t.Error("after the fallback, Stats says the kernel keeps the timer")
	}
}

// The kernel cannot start its timer for an advert (bpf_timer_init's
// allocation or bpf_timer_start failed): the advert must reach the
// process by the classic lazy reading, which then keeps the deadline,
// rather than be taken as if the kernel's timer ran (a dead master then
// kept alive until the watchdog, bpfWatchdog late).
func TestKernelTimerStartFails(t *testing.T) {
	l, o, b, _ := kernelLo(t, bpfHooks{startFail: true})
	m := o.m
	out := make([]Action, 0, 8)
	var dl time.Duration
	handle := func(e rxEvent) { out, dl = o.Handle(l.z.now(), e, out[:0]) }
	handle(rxEvent{Event: Event{Kind: EvStartup}})
	ev := rxEvent{Event: Event{Kind: EvAdvert, Src: l.src, Priority: 200, Interval: 100 * time.Millisecond}}
	ev.n = uint8(copy(ev.pkt[:], l.packet(200, 1)))
	handle(ev)
	if !b.active {
		t.Fatal("the kernel path is not attached")
	}
	heard := m.deadline()
	l.sendPkt(l.packet(200, 5))
	if polled := l.sync(); len(polled) != 0 {
		t.Fatalf("the polled socket got the template's repeat: ids %v", polled)
	}
	l.z.drain(handle)
	if m.deadline() == heard {
		t.Fatal("the advert whose timer the kernel could not start reached nobody")
	}
	if b.owns || dl != m.deadline() {
		t.Errorf("the kernel could not start its timer, yet the process trusts it: owns %v, loop armed %v past the machine's deadline",
			b.owns, dl-m.deadline())
	}
}

// packetEvery is packet with an advertisement interval of cs centiseconds.
func (l *loLab) packetEvery(prio uint8, id, cs uint16) []byte {
	p := l.packet(prio, id)
	a := Advertisement{VRID: 51, Priority: prio, Interval: cs, Count: 1}
	a.Addrs[0] = l.vip
	pay, err := a.AppendChecksummed(nil, l.src, l.dst)
	if err != nil || len(pay) != len(p)-20 {
		l.t.Fatalf("advert every %d cs: %v", cs, err)
	}
	return append(p[:20], pay...)
}

// A torn copy of the map (the new count with the previous advert's
// arrival: the kernel copies the value while the program writes it on
// another CPU) must not reach the machine: it would count its
// Master_Down_Timer from the advert before the newest.
func TestKernelTimerTornRead(t *testing.T) {
	l, o, b, _ := kernelLo(t, bpfHooks{})
	out := make([]Action, 0, 8)
	handle := func(e rxEvent) { out, _ = o.Handle(l.z.now(), e, out[:0]) }
	handle(rxEvent{Event: Event{Kind: EvStartup}})
	// Adverts at 1 s: nothing runs out while the test sends.
	ev := rxEvent{Event: Event{Kind: EvAdvert, Src: l.src, Priority: 200, Interval: time.Second}}
	ev.n = uint8(copy(ev.pkt[:], l.packetEvery(200, 1, 100)))
	handle(ev)
	sendCounted(t, l, b, 5, 1)
	b.drain(handle) // hands the first repeat
	time.Sleep(100 * time.Millisecond)
	sent := l.z.now()
	sendCounted(t, l, b, 6, 2)
	b.hooks.tear = 1
	arrived := time.Duration(-1)
	b.drain(func(e rxEvent) {
		if e.Kind == EvAdvert {
			arrived = e.Arrived
		}
		handle(e)
	})
	if arrived < sent {
		t.Errorf("handed the newest advert at %v, before it was sent (%v): the previous advert's arrival from a torn copy", arrived, sent)
	}
}

// The adverts the kernel counted stay in Stats after the runner stopped
// and closed the map: counters never go backwards (a monitoring system
// reads a drop as a wrap or a restart).
func TestKernelTimerCountSurvivesClose(t *testing.T) {
	l, o, b, _ := kernelLo(t, bpfHooks{})
	r := l.z.r
	r.lz.Store(l.z)
	out := make([]Action, 0, 8)
	handle := func(e rxEvent) { out, _ = o.Handle(l.z.now(), e, out[:0]) }
	handle(rxEvent{Event: Event{Kind: EvStartup}})
	ev := rxEvent{Event: Event{Kind: EvAdvert, Src: l.src, Priority: 200, Interval: time.Second}}
	ev.n = uint8(copy(ev.pkt[:], l.packetEvery(200, 1, 100)))
	handle(ev)
	sendCounted(t, l, b, 5, 1)
	before := r.Stats()
	b.close()
	after := r.Stats()
	if after.LazyAdverts < before.LazyAdverts || after.RxAdverts < before.RxAdverts {
		t.Errorf("after close: lazy %d rx %d, before %d and %d: the kernel's count was dropped",
			after.LazyAdverts, after.RxAdverts, before.LazyAdverts, before.RxAdverts)
	}
}
