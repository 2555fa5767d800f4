package hsrp

import (
	"slices"
	"testing"
	"time"
)

// A Standby router whose active router's heartbeat stopped becomes Active
// at once; a hint about another member, or when the active's hello came
// after its heartbeat stopped, changes nothing; a Listen router waits for
// the hold time.
func TestSilentActive(t *testing.T) {
	const ms = time.Millisecond
	m := at(t, cfg(), Standby)
	m.Handle(0, hello(upper, Active, 200), nil)
	out, _ := m.Handle(350*ms, Event{Kind: EvSilent, Src: lower, Silent: 300 * ms, Interval: 100 * ms}, nil)
	if m.State() != Standby || len(out) != 0 {
		t.Fatalf("hint about another member: %v %+v", m.State(), out)
	}
	out, _ = m.Handle(350*ms, Event{Kind: EvSilent, Src: upper, Silent: 300 * ms, Interval: 100 * ms}, nil)
	if m.State() != Active || !slices.ContainsFunc(out, func(a Action) bool { return a.Reason == ReasonSilent }) {
		t.Fatalf("state %v, actions %+v", m.State(), out)
	}

	m = at(t, cfg(), Standby)
	m.Handle(0, hello(upper, Active, 200), nil)
	m.Handle(200*ms, hello(upper, Active, 200), nil) // after its last heartbeat at 50 ms + 100 ms
	if m.Handle(350*ms, Event{Kind: EvSilent, Src: upper, Silent: 300 * ms, Interval: 100 * ms}, nil); m.State() != Standby {
		t.Fatalf("an active whose hellos outlive its heartbeat was taken over")
	}

	m = at(t, cfg(), Listen)
	m.Handle(0, hello(upper, Active, 200), nil)
	if m.Handle(350*ms, Event{Kind: EvSilent, Src: upper, Silent: 300 * ms, Interval: 100 * ms}, nil); m.State() != Listen {
		t.Fatalf("a Listen router acted on the hint: %v", m.State())
	}
}

// A takeover made on the heartbeat's silence is undone when the replaced
// active router speaks again; another router's revival changes nothing.
func TestSilentTakeoverUndone(t *testing.T) {
	const ms = time.Millisecond
	m := at(t, cfg(), Standby)
	m.Handle(0, hello(upper, Active, 200), nil)
	m.Handle(350*ms, Event{Kind: EvSilent, Src: upper, Silent: 300 * ms, Interval: 100 * ms}, nil)
	if m.State() != Active {
		t.Fatal("no takeover")
	}
	if m.Handle(400*ms, Event{Kind: EvAlive, Src: lower}, nil); m.State() != Active {
		t.Fatal("another router's revival undid the takeover")
	}
	out, _ := m.Handle(410*ms, Event{Kind: EvAlive, Src: upper}, nil)
	if m.State() != Speak || !slices.ContainsFunc(out, func(a Action) bool { return a.Kind == ActRemoveVIP }) {
		t.Fatalf("state %v, actions %+v", m.State(), out)
	}
	if m.Handle(420*ms, Event{Kind: EvAlive, Src: upper}, nil); m.State() != Speak {
		t.Fatal("a second revival changed the state")
	}
}
