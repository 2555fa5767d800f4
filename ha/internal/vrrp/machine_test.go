package vrrp

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

const sec = time.Second

var (
	me    = netip.MustParseAddr("192.0.2.10")
	lower = netip.MustParseAddr("192.0.2.5")
	upper = netip.MustParseAddr("192.0.2.20")
	vip   = netip.MustParseAddr("192.0.2.100")
)

func cfg(prio uint8) Config {
	return Config{VRID: 51, Priority: prio, AdvertInterval: sec, Preempt: true, AcceptMode: true,
		Primary: me, Addrs: []netip.Addr{vip}, GARPCount: 3}
}

type harness struct {
	t   *testing.T
	m   *Machine
	out []Action
	dl  time.Duration
}

func newH(t *testing.T, c Config) *harness {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, m: New(c)}
}

func (h *harness) do(now time.Duration, ev Event) []Action {
	h.out, h.dl = h.m.Handle(now, ev, h.out[:0])
	return h.out
}

func (h *harness) advert(now time.Duration, src netip.Addr, prio uint8, interval time.Duration) []Action {
	return h.do(now, Event{Kind: EvAdvert, Src: src, Priority: prio, Interval: interval})
}

func kinds(as []Action) []ActionKind {
	var k []ActionKind
	for _, a := range as {
		k = append(k, a.Kind)
	}
	return k
}

func (h *harness) want(state State, dl time.Duration, ks ...ActionKind) {
	h.t.Helper()
	if h.m.State() != state {
		h.t.Fatalf("state %v, want %v", h.m.State(), state)
	}
	if dl >= 0 && h.dl != dl {
		h.t.Fatalf("deadline %v, want %v", h.dl, dl)
	}
	if got := kinds(h.out); !slices.Equal(got, ks) {
		h.t.Fatalf("actions %v, want %v (%+v)", got, ks, h.out)
	}
}

var becomeMaster = []ActionKind{ActAddVIP, ActSendAdvert, ActGARP, ActBecomeMaster}

func mdi(prio int, interval time.Duration) time.Duration {
	return 3*interval + time.Duration(256-prio)*interval/256
}

// §6.4.1: Startup as owner → Master; otherwise → Backup with the down timer.
func TestInitializeStartup(t *testing.T) {
	h := newH(t, cfg(255))
	h.do(0, Event{Kind: EvStartup})
	h.want(Master, sec, becomeMaster...)
	if h.out[1].Priority != 255 || h.out[2].Count != 3 || h.out[3].Reason != ReasonOwner {
		t.Fatalf("%+v", h.out)
	}

	h = newH(t, cfg(100))
	h.do(0, Event{Kind: EvStartup})
	h.want(Backup, mdi(100, sec), ActBecomeBackup)
	// Skew for priority 100 at 1 s: 156/256 s = 609.375 ms.
	if h.m.SkewTime() != 609375*time.Microsecond || h.m.MasterDownInterval() != 3609375*time.Microsecond {
		t.Fatal(h.m.SkewTime(), h.m.MasterDownInterval())
	}
	// Startup again is ignored outside Initialize.
	h.do(1, Event{Kind: EvStartup})
	h.want(Backup, -1)
}

// §6.4.2 Backup, each row.
func TestBackupShutdown(t *testing.T) {
	h := newH(t, cfg(100))
	h.do(0, Event{Kind: EvStartup})
	h.do(sec, Event{Kind: EvShutdown})
	h.want(Initialize, NoDeadline, ActBecomeInit)
}

func TestBackupMasterDownTimer(t *testing.T) {
	h := newH(t, cfg(100))
	h.do(0, Event{Kind: EvStartup})
	h.do(mdi(100, sec)-1, Event{Kind: EvTimer}) // early timer: nothing
	h.want(Backup, mdi(100, sec))
	now := mdi(100, sec)
	h.do(now, Event{Kind: EvTimer})
	h.want(Master, now+sec, becomeMaster...)
	if h.out[3].Reason != ReasonMasterDown {
		t.Fatal(h.out[3].Reason)
	}
}

func TestBackupPriorityZero(t *testing.T) {
	h := newH(t, cfg(100))
	h.do(0, Event{Kind: EvStartup})
	h.advert(sec, upper, 200, sec)
	h.advert(2*sec, upper, 0, sec)
	skew := 156 * sec / 256
	h.want(Backup, 2*sec+skew)
	h.do(2*sec+skew, Event{Kind: EvTimer})
	h.want(Master, -1, becomeMaster...)
	if h.out[3].Reason != ReasonResigned {
		t.Fatal(h.out[3].Reason)
	}
}

func TestBackupHigherPriorityLearnsInterval(t *testing.T) {
	h := newH(t, cfg(100))
	h.do(0, Event{Kind: EvStartup})
	h.advert(sec, upper, 200, 100*time.Millisecond)
	h.want(Backup, sec+mdi(100, 100*time.Millisecond))
	if h.m.MasterAdverInterval() != 100*time.Millisecond || h.m.MasterAddr() != upper {
		t.Fatal(h.m.MasterAdverInterval(), h.m.MasterAddr())
	}
}

func TestBackupEqualPriorityAccepted(t *testing.T) {
	// §6.4.2: "greater than or equal to the local Priority" resets the timer,
	// whatever the addresses (ties are broken in Master state).
	h := newH(t, cfg(100))
	h.do(0, Event{Kind: EvStartup})
	h.advert(sec, lower, 100, sec)
	h.want(Backup, sec+mdi(100, sec))
}

func TestBackupLowerPriorityNoPreempt(t *testing.T) {
	c := cfg(100)
	c.Preempt = false
	h := newH(t, c)
	h.do(0, Event{Kind: EvStartup})
	h.advert(2*sec, upper, 50, sec)
	h.want(Backup, 2*sec+mdi(100, sec))
}

func TestBackupLowerPriorityPreempt(t *testing.T) {
	h := newH(t, cfg(100))
	h.do(0, Event{Kind: EvStartup})
	h.advert(sec, upper, 50, sec) // discarded: timer keeps running
	h.want(Backup, mdi(100, sec))
	h.do(mdi(100, sec), Event{Kind: EvTimer})
	h.want(Master, -1, becomeMaster...)
}

func TestBackupPreemptDelay(t *testing.T) {
	c := cfg(100)
	c.PreemptDelay = 10 * sec
	h := newH(t, c)
	h.do(0, Event{Kind: EvStartup})
	for now := sec; now < 10*sec; now += sec { // accepted while the delay runs
		h.advert(now, upper, 50, sec)
		h.want(Backup, min(now+mdi(100, sec), 11*sec))
	}
	h.advert(11*sec, upper, 50, sec) // delay over: discarded
	h.want(Backup, 11*sec)
	h.do(11*sec, Event{Kind: EvTimer})
	h.want(Master, -1, becomeMaster...)
	if h.out[3].Reason != ReasonPreempt {
		t.Fatal(h.out[3].Reason)
	}
	// A higher-priority master meanwhile resets the delay.
	h = newH(t, c)
	h.do(0, Event{Kind: EvStartup})
	h.advert(sec, upper, 50, sec)
	h.advert(2*sec, upper, 200, sec)
	h.advert(3*sec, upper, 50, sec)
	h.want(Backup, 3*sec+mdi(100, sec))
}

// §6.4.3 Master, each row.
func master(t *testing.T, c Config) *harness {
	h := newH(t, c)
	h.do(0, Event{Kind: EvStartup})
	h.do(mdi(int(c.Priority), c.AdvertInterval), Event{Kind: EvTimer})
	h.want(Master, -1, becomeMaster...)
	return h
}

func TestMasterShutdown(t *testing.T) {
	h := master(t, cfg(100))
	h.do(10*sec, Event{Kind: EvShutdown})
	h.want(Initialize, NoDeadline, ActSendAdvert, ActRemoveVIP, ActBecomeInit)
	if h.out[0].Priority != 0 {
		t.Fatal("resign must advertise priority 0")
	}
}

func TestMasterAdverTimer(t *testing.T) {
	h := master(t, cfg(100))
	t0 := mdi(100, sec)
	h.do(t0+sec, Event{Kind: EvTimer})
	h.want(Master, t0+2*sec, ActSendAdvert)
	if h.out[0].Priority != 100 {
		t.Fatal(h.out[0].Priority)
	}
}

func TestMasterGARPRepeat(t *testing.T) {
	c := cfg(100)
	c.GARPRepeat = 1500 * time.Millisecond
	h := master(t, c)
	t0 := mdi(100, sec)
	h.want(Master, t0+sec, becomeMaster...)
	h.do(t0+sec, Event{Kind: EvTimer})
	h.want(Master, t0+1500*time.Millisecond, ActSendAdvert)
	h.do(t0+1500*time.Millisecond, Event{Kind: EvTimer})
	h.want(Master, t0+2*sec, ActGARP)
}

func TestMasterPriorityZero(t *testing.T) {
	h := master(t, cfg(100))
	h.advert(4*sec, upper, 0, sec)
	h.want(Master, 5*sec, ActSendAdvert)
}

func TestMasterHigherPriority(t *testing.T) {
	h := master(t, cfg(100))
	h.advert(4*sec, lower, 101, 200*time.Millisecond)
	h.want(Backup, 4*sec+mdi(100, 200*time.Millisecond), ActRemoveVIP, ActBecomeBackup)
	if h.out[1].Reason != ReasonHigher || h.out[1].Peer != lower {
		t.Fatalf("%+v", h.out[1])
	}
}

func TestMasterEqualPriorityAddress(t *testing.T) {
	h := master(t, cfg(100))
	h.advert(4*sec, lower, 100, sec) // equal, lower address: discard
	h.want(Master, -1)
	h.advert(4*sec, upper, 100, sec) // equal, higher address: yield
	h.want(Backup, -1, ActRemoveVIP, ActBecomeBackup)
	if h.out[1].Reason != ReasonEqualHigher {
		t.Fatal(h.out[1].Reason)
	}
}

func TestMasterLowerPriority(t *testing.T) {
	h := master(t, cfg(100))
	h.advert(4*sec, upper, 99, sec)
	h.want(Master, -1)
}

func TestOwnAdvertIgnored(t *testing.T) {
	h := master(t, cfg(100))
	h.advert(4*sec, me, 200, sec)
	h.want(Master, -1)
}

func TestOwnerAlwaysPreempts(t *testing.T) {
	c := cfg(255)
	c.Preempt = false
	h := newH(t, c)
	h.do(0, Event{Kind: EvHold, Hold: true})
	h.do(0, Event{Kind: EvStartup})
	h.want(Backup, -1, ActBecomeBackup) // held owner does not take over
	h.advert(sec, upper, 100, sec)
	h.do(sec, Event{Kind: EvHold, Hold: false})
	h.advert(2*sec, upper, 100, sec) // now discarded: owner preempts
	h.want(Backup, sec+mdi(1, sec))  // timer from the last accepted advert
	h.do(sec+mdi(1, sec), Event{Kind: EvTimer})
	h.want(Master, -1, becomeMaster...)
}

// Tracking: a link down lowers the priority; the master tells the group at once.
func TestTrackingPriorityChange(t *testing.T) {
	h := master(t, cfg(100))
	h.do(5*sec, Event{Kind: EvPriority, Priority: 80})
	h.want(Master, 6*sec, ActSendAdvert)
	if h.out[0].Priority != 80 {
		t.Fatal(h.out[0].Priority)
	}
	h.do(5*sec, Event{Kind: EvPriority, Priority: 80}) // no change, no advert
	h.want(Master, -1)
	h.advert(5*sec, lower, 90, sec) // a backup with 90 now wins
	h.want(Backup, -1, ActRemoveVIP, ActBecomeBackup)
	h.do(6*sec, Event{Kind: EvPriority, Priority: 0}) // clamped to 1
	if h.m.Priority() != 1 {
		t.Fatal(h.m.Priority())
	}
}

// Hold: a held router behaves as priority 1 and never preempts.
func TestHold(t *testing.T) {
	h := newH(t, cfg(200))
	h.do(0, Event{Kind: EvHold, Hold: true})
	h.do(0, Event{Kind: EvStartup})
	h.want(Backup, mdi(1, sec), ActBecomeBackup)
	h.advert(sec, upper, 50, sec) // lower master: accepted (no preemption while held)
	h.want(Backup, sec+mdi(1, sec))
	// Nobody else advertises: after the longest down interval it serves.
	now := sec + mdi(1, sec)
	h.do(now, Event{Kind: EvTimer})
	h.want(Master, -1, becomeMaster...)
	if h.out[1].Priority != 1 {
		t.Fatal("held master must advertise priority 1")
	}
	// Any un-held member outranks it.
	h.advert(now+sec, lower, 2, sec)
	h.want(Backup, -1, ActRemoveVIP, ActBecomeBackup)
	// Release while master: re-advertise the real priority at once.
	h = master(t, cfg(200))
	h.do(10*sec, Event{Kind: EvHold, Hold: true})
	h.want(Master, 11*sec, ActSendAdvert)
	if h.out[0].Priority != 1 {
		t.Fatal(h.out[0].Priority)
	}
	h.do(12*sec, Event{Kind: EvHold, Hold: false})
	h.want(Master, 13*sec, ActSendAdvert)
	if h.out[0].Priority != 200 {
		t.Fatal(h.out[0].Priority)
	}
}

// Malformed adverts never reach the machine: the runner drops them on the
// error from Receive and counts the reason. This mirrors that loop.
func TestMalformedAdvertsIgnored(t *testing.T) {
	h := master(t, cfg(100))
	want := &Expect{VRID: 51, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.100")}}
	bad := append([]byte(nil), golden1...)
	bad[2] = 254 // priority changed, checksum now wrong
	counts := map[error]int{}
	for _, tc := range []struct {
		msg []byte
		ttl int
	}{{bad, 255}, {golden1, 1}, {golden1[:5], 255}} {
		var a Advertisement
		if err := Receive(&a, tc.msg, golden1Src, mcast, tc.ttl, want); err != nil {
			counts[err]++
			continue
		}
		h.advert(4*sec, golden1Src, a.Priority, a.IntervalDuration())
	}
	h.want(Master, -1, becomeMaster...) // unchanged: out was not touched
	if counts[ErrChecksum] != 1 || counts[ErrTTL] != 1 || counts[ErrTruncated] != 1 {
		t.Fatal(counts)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, f := range []func(*Config){
		func(c *Config) { c.VRID = 0 },
		func(c *Config) { c.Priority = 0 },
		func(c *Config) { c.AdvertInterval = time.Millisecond },
		func(c *Config) { c.AdvertInterval = time.Minute },
		func(c *Config) { c.Primary = netip.Addr{} },
		func(c *Config) { c.Addrs = nil },
		func(c *Config) { c.Addrs = []netip.Addr{netip.MustParseAddr("::1")} },
		func(c *Config) { c.GARPCount = -1 },
	} {
		c := cfg(100)
		f(&c)
		if c.Validate() == nil {
			t.Errorf("accepted %+v", c)
		}
	}
}

func TestHandleZeroAllocs(t *testing.T) {
	m := New(cfg(100))
	out := make([]Action, 0, 8)
	now := time.Duration(0)
	out, _ = m.Handle(now, Event{Kind: EvStartup}, out[:0])
	n := testing.AllocsPerRun(1000, func() {
		now += 10 * time.Millisecond
		out, _ = m.Handle(now, Event{Kind: EvAdvert, Src: upper, Priority: 200, Interval: sec}, out[:0])
		out, _ = m.Handle(now, Event{Kind: EvTimer}, out[:0])
	})
	if n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

func BenchmarkHandleAdvert(b *testing.B) {
	m := New(cfg(100))
	out := make([]Action, 0, 8)
	out, _ = m.Handle(0, Event{Kind: EvStartup}, out[:0])
	now := time.Duration(0)
	b.ReportAllocs()
	for b.Loop() {
		now++
		out, _ = m.Handle(now, Event{Kind: EvAdvert, Src: upper, Priority: 200, Interval: sec}, out[:0])
	}
}

// The console reports the master and its advertised priority: ours when
// Master, the last advert's when Backup.
func TestMasterPriorityReported(t *testing.T) {
	h := newH(t, cfg(100))
	h.do(0, Event{Kind: EvStartup})
	h.advert(sec/10, upper, 200, sec)
	if a, p := h.m.MasterAddr(), h.m.MasterPriority(); h.m.State() != Backup || a != upper || p != 200 {
		t.Fatalf("backup: state %v, master %s priority %d; want %s priority 200", h.m.State(), a, p, upper)
	}
	h.do(10*sec, Event{Kind: EvTimer}) // master down: we take over
	if a, p := h.m.MasterAddr(), h.m.MasterPriority(); h.m.State() != Master || a != me || p != 100 {
		t.Fatalf("master: state %v, master %s priority %d; want %s priority 100", h.m.State(), a, p, me)
	}
}

// The Adver_Timer keeps its cadence: a wake-up late by its latency sends
// the advert and re-arms from the deadline that passed, not from the late
// now, so the deadline moves by exactly Advertisement_Interval each time
// (the timer's period, which the kernel then re-arms on its own) and the
// lateness does not add up.
func TestMasterAdverTimerCadence(t *testing.T) {
	h := master(t, cfg(100))
	at := mdi(100, sec) + sec
	for _, late := range []time.Duration{0, time.Millisecond, 3 * time.Millisecond, 40 * time.Millisecond, sec / 2} {
		h.do(at+late, Event{Kind: EvTimer})
		at += sec
		h.want(Master, at, ActSendAdvert)
	}
}

// A wake-up later than half an interval (the process stalled) sends one
// advert, not one per missed deadline, and the next deadline is a whole
// interval after now: no burst of catch-up adverts.
func TestMasterLateWakeOneAdvert(t *testing.T) {
	for _, late := range []time.Duration{sec/2 + 1, 7 * sec / 10, 2*sec + sec/2, 10 * sec} {
		h := master(t, cfg(100))
		at := mdi(100, sec) + sec
		now := at + late
		h.do(now, Event{Kind: EvTimer})
		h.want(Master, now+sec, ActSendAdvert)
		h.do(now+time.Millisecond, Event{Kind: EvTimer}) // a second wake-up at once
		h.want(Master, now+sec)
	}
}
