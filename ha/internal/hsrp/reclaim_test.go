package hsrp

import (
	"slices"
	"testing"
	"time"
)

func reclaimCfg() Config {
	c := cfg()
	c.GARPLowerPrioCount, c.GARPLowerPrioInterval = 2, 2*sec
	return c
}

// active makes a machine Active through the protocol (Standby, active timer
// expired) at time t0 and returns it.
func active(t *testing.T, c Config) (*Machine, time.Duration) {
	t.Helper()
	m := at(t, c, Standby)
	out, _ := m.Handle(3*sec, Event{Kind: EvTimer}, nil)
	if m.State() != Active || !slices.Contains(kinds(out), ActGARP) {
		t.Fatalf("%v %v", m.State(), kinds(out))
	}
	return m, 3 * sec
}

// A hello from a lower-priority active router (it took over while we were
// cut off or stopped): Coup (event h, action G) and a gratuitous ARP burst;
// a flood of them costs one burst per interval, the rest folded into one
// at its end.
func TestActiveLowerActiveReclaims(t *testing.T) {
	m, t0 := active(t, reclaimCfg())
	// Inside the takeover's interval: deferred to its end.
	out, dl := m.Handle(t0+sec/2, hello(upper, Active, 50), nil)
	if !slices.Equal(kinds(out), []ActionKind{G}) || dl != t0+sec {
		t.Fatalf("%v deadline %v", kinds(out), dl)
	}
	for i := range 50 {
		out, _ = m.Handle(t0+sec/2+time.Duration(i)*time.Millisecond, hello(upper, Active, 50), nil)
		if !slices.Equal(kinds(out), []ActionKind{G}) {
			t.Fatal(kinds(out))
		}
	}
	if m.Suppressed() != 51 {
		t.Fatalf("suppressed %d, want 51", m.Suppressed())
	}
	out, dl = m.Handle(t0+sec, Event{Kind: EvTimer}, nil) // hello timer
	if !slices.Equal(kinds(out), []ActionKind{F}) || dl != t0+2*sec {
		t.Fatalf("%v deadline %v", kinds(out), dl)
	}
	out, _ = m.Handle(t0+2*sec, Event{Kind: EvTimer}, nil) // hello timer and the deferred burst
	if !slices.Equal(kinds(out), []ActionKind{F, I}) || out[1].Reason != ReasonReclaimLower || out[1].Count != 2 {
		t.Fatalf("%+v", out)
	}
	out, _ = m.Handle(t0+5*sec, hello(upper, Active, 50), nil) // outside: at once
	if !slices.Equal(kinds(out), []ActionKind{G, I}) {
		t.Fatal(kinds(out))
	}
}

// Hellos late by a holdtime (SIGSTOP, CPU starvation): a standby may have
// taken over meanwhile.
func TestActiveStallReclaims(t *testing.T) {
	m, t0 := active(t, reclaimCfg())
	out, _ := m.Handle(t0+sec+sec/2, Event{Kind: EvTimer}, nil) // late by less
	if !slices.Equal(kinds(out), []ActionKind{F}) {
		t.Fatal(kinds(out))
	}
	late := t0 + 2*sec + sec/2 + 2*sec // the previous hello left 3 s (a holdtime) ago
	out, _ = m.Handle(late, Event{Kind: EvTimer}, nil)
	if !slices.Equal(kinds(out), []ActionKind{F, I}) || out[1].Reason != ReasonReclaimStall {
		t.Fatalf("%+v", out)
	}
}

// Leaving Active forgets a deferred burst and the refresh.
func TestResignForgetsReclaim(t *testing.T) {
	c := reclaimCfg()
	c.GARPRefresh, c.GARPRefreshCount = 1500*time.Millisecond, 1
	m, t0 := active(t, c)
	m.Handle(t0+sec/2, hello(upper, Active, 50), nil) // deferred
	out, _ := m.Handle(t0+sec/2, hello(upper, Active, 150), nil)
	if m.State() != Speak {
		t.Fatal(m.State(), kinds(out))
	}
	for now := t0 + sec; now < t0+sec/2+3*sec; now += sec / 4 { // until the new active would be lost
		out, _ = m.Handle(now, Event{Kind: EvTimer}, nil)
		if slices.Contains(kinds(out), ActGARP) {
			t.Fatalf("at %v: %+v", now, out)
		}
	}
}

func TestActiveRefresh(t *testing.T) {
	c := cfg()
	c.GARPRefresh, c.GARPRefreshCount = 1500*time.Millisecond, 1
	m, t0 := active(t, c)
	out, dl := m.Handle(t0+sec, Event{Kind: EvTimer}, nil)
	if !slices.Equal(kinds(out), []ActionKind{F}) || dl != t0+1500*time.Millisecond {
		t.Fatalf("%v %v", kinds(out), dl)
	}
	out, _ = m.Handle(t0+1500*time.Millisecond, Event{Kind: EvTimer}, nil)
	if !slices.Equal(kinds(out), []ActionKind{I}) || out[0].Reason != ReasonRefresh || out[0].Count != 1 {
		t.Fatalf("%+v", out)
	}
}

func TestConfigValidateReclaim(t *testing.T) {
	for _, f := range []func(*Config){
		func(c *Config) { c.GARPLowerPrioCount = -1 },
		func(c *Config) { c.GARPLowerPrioCount, c.GARPLowerPrioInterval = 1, 0 },
		func(c *Config) { c.GARPRefresh = -1 },
		func(c *Config) { c.GARPRefreshCount = -1 },
	} {
		c := reclaimCfg()
		f(&c)
		if c.Validate() == nil {
			t.Errorf("accepted %+v", c)
		}
	}
}
