//go:build linux

package vrrp

import (
	"net/netip"
	"testing"
	"time"
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
