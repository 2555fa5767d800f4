package runner

import (
	"context"
	"math"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

type event struct {
	name string
	next time.Duration // the deadline the machine returns after it
}

type seen struct {
	at   time.Duration
	name string
}

// machine records what it was fed and when; its actions are the event
// names, so Do proves it gets what Handle returned.
type machine struct {
	seen []seen
	next time.Duration
}

func (m *machine) Handle(now time.Duration, ev event, out []string) ([]string, time.Duration) {
	m.seen = append(m.seen, seen{now, ev.name})
	if ev.next != 0 {
		m.next = ev.next
	}
	if ev.name == "timer" {
		m.next = math.MaxInt64
	}
	return append(out, ev.name), m.next
}

func TestLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const never = time.Duration(math.MaxInt64)
		m := &machine{next: never}
		rx, ctl := make(chan event), make(chan event, 4)
		var done []string
		l := Loop[event, string]{Machine: m, Received: rx, Control: ctl,
			Startup: event{name: "startup"}, Shutdown: event{name: "shutdown"}, Timer: event{name: "timer"},
			Do: func(acts []string) { done = append(done, acts...) }}
		// Queued before Run: handled before Startup (a held owner must
		// not start as master).
		ctl <- event{name: "hold"}
		ctl <- event{name: "priority"}
		ctx, cancel := context.WithCancel(context.Background())
		finished := make(chan struct{})
		go func() { defer close(finished); l.Run(ctx) }()

		time.Sleep(time.Second)
		rx <- event{name: "advert", next: 3 * time.Second} // timer due 2 s from now
		time.Sleep(5 * time.Second)                        // it fires once: the machine then has no deadline
		ctl <- event{name: "priority2"}
		time.Sleep(time.Second)
		cancel()
		<-finished

		want := []seen{{0, "hold"}, {0, "priority"}, {0, "startup"}, {time.Second, "advert"},
			{3 * time.Second, "timer"}, {6 * time.Second, "priority2"}, {7 * time.Second, "shutdown"}}
		if !slices.Equal(m.seen, want) {
			t.Errorf("machine saw %v\nwant %v", m.seen, want)
		}
		names := make([]string, len(want))
		for i, w := range want {
			names[i] = w.name
		}
		if !slices.Equal(done, names) {
			t.Errorf("Do got %v, want %v", done, names)
		}
	})
}

// A deadline already past fires at once; one far away (or none) not at all.
func TestLoopDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &machine{next: -time.Second}
		rx := make(chan event)
		l := Loop[event, string]{Machine: m, Received: rx, Control: make(chan event),
			Startup: event{name: "startup"}, Shutdown: event{name: "shutdown"}, Timer: event{name: "timer"},
			Do: func([]string) {}}
		ctx, cancel := context.WithCancel(context.Background())
		finished := make(chan struct{})
		go func() { defer close(finished); l.Run(ctx) }()
		synctest.Wait()
		rx <- event{name: "far", next: 1 << 62} // 146 years: never within the test
		time.Sleep(24 * time.Hour)
		cancel()
		<-finished
		want := []seen{{0, "startup"}, {0, "timer"}, {0, "far"}, {24 * time.Hour, "shutdown"}}
		if !slices.Equal(m.seen, want) {
			t.Errorf("machine saw %v\nwant %v", m.seen, want)
		}
	})
}

// Awake is called after every advertisement received and every timer the
// machine handled (the wake-ups the election has anyway, at which the
// agent reads its heartbeat socket), and after nothing else.
func TestLoopAwake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &machine{next: time.Duration(math.MaxInt64)}
		rx, ctl := make(chan event), make(chan event, 4)
		var awake []time.Duration
		l := Loop[event, string]{Machine: m, Received: rx, Control: ctl,
			Startup: event{name: "startup"}, Shutdown: event{name: "shutdown"}, Timer: event{name: "timer"},
			Do:    func([]string) {},
			Awake: func() { awake = append(awake, time.Duration(time.Now().UnixNano())) }}
		start := time.Duration(time.Now().UnixNano())
		ctx, cancel := context.WithCancel(context.Background())
		finished := make(chan struct{})
		go func() { defer close(finished); l.Run(ctx) }()
		time.Sleep(time.Second)
		rx <- event{name: "advert", next: 3 * time.Second}
		time.Sleep(5 * time.Second)
		ctl <- event{name: "priority"}
		time.Sleep(time.Second)
		cancel()
		<-finished
		for i := range awake {
			awake[i] -= start
		}
		if want := []time.Duration{time.Second, 3 * time.Second}; !slices.Equal(awake, want) {
			t.Errorf("Awake called at %v, want %v (the advert and the timer)", awake, want)
		}
	})
}

// Queued is asked at every wake-up, before the event that woke the loop
// and before a deadline that passed is acted on: a queued event that moves
// the deadline (an advert read late) keeps the timer from firing. Every
// wake-up is counted.
func TestLoopQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &machine{next: time.Duration(math.MaxInt64)}
		rx, ctl := make(chan event), make(chan event, 4)
		var queue []event
		var wakeups atomic.Uint64
		l := Loop[event, string]{Machine: m, Received: rx, Control: ctl,
			Startup: event{name: "startup"}, Shutdown: event{name: "shutdown"}, Timer: event{name: "timer"},
			Do: func([]string) {}, Wakeups: &wakeups,
			Queued: func(handle func(event)) {
				for _, ev := range queue {
					handle(ev)
				}
				queue = queue[:0]
			}}
		ctx, cancel := context.WithCancel(context.Background())
		finished := make(chan struct{})
		go func() { defer close(finished); l.Run(ctx) }()
		time.Sleep(time.Second)
		queue = append(queue, event{name: "late1"})
		rx <- event{name: "advert", next: 3 * time.Second} // due at 3 s
		time.Sleep(time.Second)
		queue = append(queue, event{name: "late2"})
		ctl <- event{name: "priority"}
		time.Sleep(time.Second - time.Nanosecond)
		queue = append(queue, event{name: "late3", next: 5 * time.Second}) // read at the 3 s deadline: moved
		time.Sleep(4*time.Second + time.Nanosecond)                        // the timer at 5 s
		cancel()
		<-finished
		want := []seen{{0, "startup"}, {time.Second, "late1"}, {time.Second, "advert"}, {2 * time.Second, "late2"},
			{2 * time.Second, "priority"}, {3 * time.Second, "late3"}, {5 * time.Second, "timer"},
			{7 * time.Second, "shutdown"}}
		if !slices.Equal(m.seen, want) {
			t.Errorf("machine saw %v\nwant %v", m.seen, want)
		}
		if w := wakeups.Load(); w != 4 {
			t.Errorf("%d wake-ups, want 4 (advert, priority, the deadline at 3 s and at 5 s)", w)
		}
	})
}
