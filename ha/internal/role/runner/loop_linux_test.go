//go:build linux

package runner

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/deadline"
)

// relMachine sets its deadline relative to the event's time (in), so that
// a test on a real clock can move it.
type relMachine struct {
	seen []seen
	dl   time.Duration
}

func (m *relMachine) Handle(now time.Duration, ev event, out []string) ([]string, time.Duration) {
	m.seen = append(m.seen, seen{now, ev.name})
	switch {
	case ev.name == "timer":
		m.dl = deadline.Never
	case ev.next != 0:
		m.dl = now + ev.next
	}
	return append(out, ev.name), m.dl
}

// The loop on a timerfd (the runners' clock): a deadline moved later does
// not fire at its old time, one moved earlier fires, after the event that
// set it, and not before its time. Ordering only, on the real clock.
func TestLoopDeadlineTimer(t *testing.T) {
	clk, err := deadline.New()
	if err != nil {
		t.Fatal(err)
	}
	defer clk.Close()
	ref, err := deadline.New()
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	m := &relMachine{dl: deadline.Never}
	rx, ctl := make(chan event), make(chan event, 1)
	did := make(chan string, 16)
	l := Loop[event, string]{Machine: m, Received: rx, Control: ctl, Clock: clk,
		Startup: event{name: "startup", next: time.Hour}, Shutdown: event{name: "shutdown"}, Timer: event{name: "timer"},
		Do: func(acts []string) {
			for _, a := range acts {
				did <- a
			}
		}}
	ctl <- event{name: "hold", next: time.Millisecond} // moved an hour later by startup
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go func() { defer close(finished); l.Run(ctx) }()
	<-did
	<-did
	ref.Reset(20 * time.Millisecond) // well past the hold's old deadline
	for {
		<-ref.C()
		if ref.Due(ref.Now()) {
			break
		}
	}
	rx <- event{name: "advert", next: time.Millisecond}
	<-did
	if got := <-did; got != "timer" {
		t.Fatalf("after the advert: %q, want the timer", got)
	}
	cancel()
	<-finished
	names := make([]string, len(m.seen))
	for i, s := range m.seen {
		names[i] = s.name
	}
	if want := []string{"hold", "startup", "advert", "timer", "shutdown"}; !slices.Equal(names, want) {
		t.Fatalf("machine saw %v, want %v", names, want)
	}
	if adv, tm := m.seen[2].at, m.seen[3].at; tm < adv+time.Millisecond {
		t.Errorf("timer handled at %v, before the advert's deadline %v", tm, adv+time.Millisecond)
	}
}
