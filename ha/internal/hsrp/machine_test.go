package hsrp

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
	vip   = netip.MustParseAddr("192.0.2.1")
)

func cfg() Config {
	return Config{Group: 1, Priority: 100, Preempt: true, Auth: DefaultAuth, VIP: vip,
		Hellotime: sec, Holdtime: 3 * sec, Primary: me, GARPCount: 2}
}

// at puts a machine into state s at time 0 with both timers running, as if
// it had got there by the protocol (white-box: same package).
func at(t *testing.T, c Config, s State) *Machine {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	m := New(c)
	if s == Initial {
		return m
	}
	m.Handle(0, Event{Kind: EvEnable}, nil)
	m.state = s
	if m.speaking() {
		m.helloTime = m.hello
	}
	if s == Active {
		m.activeTimer, m.standbyTimer = NoDeadline, NoDeadline
	}
	return m
}

func hello(src netip.Addr, s State, prio uint8) Event {
	return Event{Kind: EvMessage, Src: src, Msg: Message{OpCode: OpHello, State: s, Priority: prio,
		Hellotime: 1, Holdtime: 3, Group: 1, Auth: DefaultAuth, VIP: vip}}
}

func op(src netip.Addr, o uint8, s State, prio uint8) Event {
	e := hello(src, s, prio)
	e.Msg.OpCode = o
	return e
}

func kinds(as []Action) []ActionKind {
	var k []ActionKind
	for _, a := range as {
		k = append(k, a.Kind)
	}
	return k
}

const (
	F  = ActHello
	G  = ActCoup
	H  = ActResign
	I  = ActGARP
	AV = ActAddVIP
	RV = ActRemoveVIP
	S  = ActState
)

// The full table: every (state, event) cell this implementation defines, in
// the RFC 2281 §5.6 event lettering. Cells not listed leave the state alone
// and send nothing (tested below as "no-op cells").
func TestStateTable(t *testing.T) {
	noVIP := cfg()
	noVIP.VIP = netip.Addr{}
	nopre := cfg()
	nopre.Preempt = false
	reclaim := cfg()
	reclaim.GARPLowerPrioCount, reclaim.GARPLowerPrioInterval = 1, sec
	for _, tc := range []struct {
		name  string
		c     Config
		from  State
		now   time.Duration
		ev    Event
		to    State
		kinds []ActionKind
	}{
		{"a Initial→Listen", cfg(), Initial, 0, Event{Kind: EvEnable}, Listen, []ActionKind{S}},
		{"a Initial→Learn (no VIP)", noVIP, Initial, 0, Event{Kind: EvEnable}, Learn, []ActionKind{S}},
		{"b Learn", cfg(), Learn, 0, Event{Kind: EvDisable}, Initial, []ActionKind{S}},
		{"b Listen", cfg(), Listen, 0, Event{Kind: EvDisable}, Initial, []ActionKind{S}},
		{"b Speak", cfg(), Speak, 0, Event{Kind: EvDisable}, Initial, []ActionKind{S}},
		{"b Standby", cfg(), Standby, 0, Event{Kind: EvDisable}, Initial, []ActionKind{S}},
		{"b Active resigns", cfg(), Active, 0, Event{Kind: EvDisable}, Initial, []ActionKind{H, RV, S}},
		{"c Listen→Speak", cfg(), Listen, 3 * sec, Event{Kind: EvTimer}, Speak, []ActionKind{S, F}},
		{"c Standby→Active", cfg(), Standby, 3 * sec, Event{Kind: EvTimer}, Active, []ActionKind{AV, S, F, I}},
		{"c Learn stays", noVIP, Learn, 3 * sec, Event{Kind: EvTimer}, Learn, nil},
		{"e Speak hello", cfg(), Speak, sec, Event{Kind: EvTimer}, Speak, []ActionKind{F}},
		{"e Standby hello", cfg(), Standby, sec, Event{Kind: EvTimer}, Standby, []ActionKind{F}},
		{"e Active hello", cfg(), Active, sec, Event{Kind: EvTimer}, Active, []ActionKind{F}},
		{"f Speak→Listen", cfg(), Speak, sec, hello(upper, Speak, 100), Listen, []ActionKind{S}},
		{"f Standby→Listen", cfg(), Standby, sec, hello(upper, Speak, 150), Listen, []ActionKind{S}},
		{"f lower speaker ignored", cfg(), Speak, sec, hello(lower, Speak, 100), Speak, nil},
		{"g Learn→Listen learns VIP", noVIP, Learn, sec, hello(upper, Active, 150), Listen, []ActionKind{S}},
		{"g Listen", cfg(), Listen, sec, hello(upper, Active, 150), Listen, nil},
		{"g Speak", cfg(), Speak, sec, hello(upper, Active, 150), Speak, nil},
		{"g Standby", cfg(), Standby, sec, hello(upper, Active, 150), Standby, nil},
		{"g Active→Speak", cfg(), Active, sec, hello(upper, Active, 150), Speak, []ActionKind{RV, S, F}},
		{"g equal priority higher address", cfg(), Active, sec, hello(upper, Active, 100), Speak, []ActionKind{RV, S, F}},
		{"h Learn→Listen", noVIP, Learn, sec, hello(upper, Active, 50), Listen, []ActionKind{S}},
		{"h Listen preempt→Active", cfg(), Listen, sec, hello(upper, Active, 50), Active, []ActionKind{G, AV, S, F, I}},
		{"h Speak preempt→Active", cfg(), Speak, sec, hello(upper, Active, 50), Active, []ActionKind{G, AV, S, F, I}},
		{"h Standby preempt→Active", cfg(), Standby, sec, hello(lower, Active, 100), Active, []ActionKind{G, AV, S, F, I}},
		{"h Standby no preempt", nopre, Standby, sec, hello(upper, Active, 50), Standby, nil},
		{"h Active sends coup", cfg(), Active, sec, hello(upper, Active, 50), Active, []ActionKind{G}},
		{"i Standby→Active", cfg(), Standby, sec, op(upper, OpResign, Active, 150), Active, []ActionKind{AV, S, F, I}},
		{"i Listen→Speak", cfg(), Listen, sec, op(upper, OpResign, Active, 150), Speak, []ActionKind{S, F}},
		// In Speak we are the best candidate heard (a higher speaker or
		// standby would have sent us to Listen, a lower standby to
		// Standby): nobody else takes over, so we do at once.
		{"i Speak→Active", cfg(), Speak, sec, op(upper, OpResign, Active, 150), Active, []ActionKind{AV, S, F, I}},
		{"j Active→Speak resigns", cfg(), Active, sec, op(upper, OpCoup, Speak, 150), Speak, []ActionKind{H, RV, S, F}},
		{"j lower coup ignored", cfg(), Active, sec, op(upper, OpCoup, Speak, 50), Active, nil},
		{"k Speak→Listen", cfg(), Speak, sec, hello(upper, Standby, 150), Listen, []ActionKind{S}},
		{"k Standby→Listen", cfg(), Standby, sec, hello(upper, Standby, 150), Listen, []ActionKind{S}},
		{"k Listen", cfg(), Listen, sec, hello(upper, Standby, 150), Listen, nil},
		{"l Listen→Speak", cfg(), Listen, sec, hello(upper, Standby, 50), Speak, []ActionKind{S, F}},
		{"l Speak→Standby", cfg(), Speak, sec, hello(upper, Standby, 50), Standby, []ActionKind{S}},
		{"l Standby ignores", cfg(), Standby, sec, hello(upper, Standby, 50), Standby, nil},
		{"h Active coup and re-announce", reclaim, Active, sec, hello(upper, Active, 50), Active, []ActionKind{G, I}},
		{"own message ignored", cfg(), Standby, sec, op(me, OpResign, Active, 150), Standby, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := at(t, tc.c, tc.from)
			out, _ := m.Handle(tc.now, tc.ev, nil)
			if m.State() != tc.to || !slices.Equal(kinds(out), tc.kinds) {
				t.Fatalf("%v → %v %v, want %v %v", tc.from, m.State(), kinds(out), tc.to, tc.kinds)
			}
		})
	}
}

func TestSpeakTimers(t *testing.T) {
	// d in Speak with an active router known → Standby.
	m := at(t, cfg(), Listen)
	m.Handle(sec, hello(upper, Active, 150), nil)        // active known until 4 s
	out, _ := m.Handle(3*sec, Event{Kind: EvTimer}, nil) // standby timer (3 s) → Speak
	if m.State() != Speak {
		t.Fatal(m.State(), kinds(out))
	}
	m.Handle(3500*time.Millisecond, hello(upper, Active, 150), nil)
	out, _ = m.Handle(6*sec, Event{Kind: EvTimer}, nil)
	if m.State() != Standby || !slices.Contains(kinds(out), F) {
		t.Fatal(m.State(), kinds(out))
	}
	// d in Speak with nobody active → straight to Active.
	m = at(t, cfg(), Listen)
	m.Handle(3*sec, Event{Kind: EvTimer}, nil) // c and d at once → Speak
	if m.State() != Speak {
		t.Fatal(m.State())
	}
	out, dl := m.Handle(6*sec, Event{Kind: EvTimer}, nil)
	if m.State() != Active || !slices.Equal(kinds(out), []ActionKind{AV, S, F, I}) || dl != 7*sec {
		t.Fatal(m.State(), kinds(out), dl)
	}
}

func TestLearnTimersAndVIP(t *testing.T) {
	c := cfg()
	c.VIP, c.Hellotime, c.Holdtime = netip.Addr{}, 0, 0
	m := at(t, c, Learn)
	if h, d := m.Timers(); h != 3*sec || d != 10*sec {
		t.Fatal(h, d)
	}
	ev := hello(upper, Active, 150)
	ev.Msg.Hellotime, ev.Msg.Holdtime = 2, 7
	_, dl := m.Handle(sec, ev, nil)
	if h, d := m.Timers(); h != 2*sec || d != 7*sec || m.VIP() != vip || m.State() != Listen {
		t.Fatal(h, d, m.VIP(), m.State())
	}
	if dl != 8*sec { // active timer from the hello's holdtime
		t.Fatal(dl)
	}
}

func TestHoldAndTracking(t *testing.T) {
	m := at(t, cfg(), Standby)
	out, _ := m.Handle(sec, Event{Kind: EvHold, Hold: true}, nil)
	if m.Priority() != 1 || !slices.Equal(kinds(out), []ActionKind{F}) {
		t.Fatal(m.Priority(), kinds(out))
	}
	// Held: no preemption of a lower active router.
	out, _ = m.Handle(sec, hello(upper, Active, 50), nil)
	if m.State() != Standby || len(out) != 0 {
		t.Fatal(m.State(), kinds(out))
	}
	if msg := m.Message(OpHello); msg.Priority != 1 || msg.State != Standby || msg.Hellotime != 1 || msg.Holdtime != 3 {
		t.Fatalf("%+v", msg)
	}
	m.Handle(2*sec, Event{Kind: EvHold, Hold: false}, nil)
	out, _ = m.Handle(2*sec, Event{Kind: EvPriority, Priority: 40}, nil)
	if m.Priority() != 40 || !slices.Equal(kinds(out), []ActionKind{F}) {
		t.Fatal(m.Priority(), kinds(out))
	}
}

func TestConfigValidate(t *testing.T) {
	for _, f := range []func(*Config){
		func(c *Config) { c.Primary = netip.Addr{} },
		func(c *Config) { c.VIP = netip.MustParseAddr("::1") },
		func(c *Config) { c.Hellotime = 0 },
		func(c *Config) { c.Holdtime = c.Hellotime },
		func(c *Config) { c.GARPCount = -1 },
	} {
		c := cfg()
		f(&c)
		if c.Validate() == nil {
			t.Errorf("accepted %+v", c)
		}
	}
}

func TestHandleZeroAllocs(t *testing.T) {
	m := at(t, cfg(), Standby)
	out := make([]Action, 0, 8)
	ev := hello(upper, Active, 150)
	now := sec
	n := testing.AllocsPerRun(1000, func() {
		now += time.Millisecond
		out, _ = m.Handle(now, ev, out[:0])
		out, _ = m.Handle(now, Event{Kind: EvTimer}, out[:0])
	})
	if n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

func BenchmarkHandleHello(b *testing.B) {
	m := New(cfg())
	m.Handle(0, Event{Kind: EvEnable}, nil)
	out := make([]Action, 0, 8)
	ev := hello(upper, Active, 150)
	now := time.Duration(0)
	b.ReportAllocs()
	for b.Loop() {
		now++
		out, _ = m.Handle(now, ev, out[:0])
	}
}

// The console reports the active router and its priority: the last
// hello's when another is active, ours when we are.
func TestActiveReported(t *testing.T) {
	m := at(t, cfg(), Listen)
	m.Handle(sec/10, hello(upper, Active, 150), nil)
	if a, p := m.Active(); a != upper || p != 150 {
		t.Fatalf("listening: active %s priority %d; want %s 150", a, p, upper)
	}
	m = at(t, cfg(), Active)
	if a, p := m.Active(); a != me || p != 100 {
		t.Fatalf("active: %s priority %d; want %s 100", a, p, me)
	}
}

// The hello timer keeps its cadence: a wake-up late by its latency sends
// the hello and re-arms from the deadline that passed, so the deadline
// moves by exactly Hellotime (the kernel repeats it); a wake-up later than
// half a Hellotime sends one hello and the next a whole Hellotime later.
func TestHelloCadence(t *testing.T) {
	m := at(t, cfg(), Active)
	due := sec
	for _, late := range []time.Duration{0, time.Millisecond, 40 * time.Millisecond, sec / 2} {
		out, dl := m.Handle(due+late, Event{Kind: EvTimer}, nil)
		due += sec
		if !slices.Equal(kinds(out), []ActionKind{F}) || dl != due {
			t.Fatalf("late %v: %v, deadline %v, want [F], %v", late, kinds(out), dl, due)
		}
	}
	now := due + sec/2 + 1
	out, dl := m.Handle(now, Event{Kind: EvTimer}, nil)
	if !slices.Equal(kinds(out), []ActionKind{F}) || dl != now+sec {
		t.Fatalf("late by more than half: %v, deadline %v, want [F], %v", kinds(out), dl, now+sec)
	}
}
