package advert

import (
	"testing"
	"time"
)

const s = time.Second

// drain polls at now and returns what was due.
func drain(sc *Scheduler, now time.Duration) []Send {
	var out []Send
	for {
		x, ok := sc.Poll(now)
		if !ok {
			return out
		}
		out = append(out, x)
	}
}

// run steps fake time from `from` to `to`, jumping to each deadline, and
// returns every send with its time.
type timed struct {
	at time.Duration
	Send
}

func run(sc *Scheduler, from, to time.Duration) []timed {
	var out []timed
	now := from
	for {
		for _, x := range drain(sc, now) {
			out = append(out, timed{now, x})
		}
		n := sc.Next()
		if n > to {
			return out
		}
		now = max(n, now)
	}
}

func TestSchedulerStandbySendsNothing(t *testing.T) {
	sc := NewScheduler(3 * s)
	if got := run(sc, 0, time.Hour); len(got) != 0 {
		t.Fatalf("standby sent %v", got)
	}
	sc.Solicit(5 * s)
	if got := run(sc, 5*s, time.Hour); len(got) != 0 || sc.Stats().SolicitationsWhileStandby != 1 {
		t.Fatalf("standby answered a solicitation: %v %+v", got, sc.Stats())
	}
}

func TestSchedulerPeriodic(t *testing.T) {
	sc := NewScheduler(3 * s)
	sc.SetActive(10*s, true)
	got := run(sc, 10*s, 20*s)
	wantAt := []time.Duration{10 * s, 13 * s, 16 * s, 19 * s}
	if len(got) != len(wantAt) {
		t.Fatalf("got %v", got)
	}
	for i, g := range got {
		if g.at != wantAt[i] || g.Sequence != uint16(i) {
			t.Errorf("advert %d at %v seq %d, want at %v seq %d", i, g.at, g.Sequence, wantAt[i], i)
		}
	}
	if got[0].Reason != Activated || got[1].Reason != Periodic || got[0].Withdraw {
		t.Errorf("reasons %v %v", got[0].Reason, got[1].Reason)
	}
}

// With a long interval the first MaxInitialAdverts come at most 16 s apart.
func TestSchedulerInitialAdverts(t *testing.T) {
	sc := NewScheduler(10 * time.Minute)
	sc.SetActive(0, true)
	got := run(sc, 0, 30*time.Minute)
	wantAt := []time.Duration{0, 16 * s, 32 * s, 32*s + 10*time.Minute, 32*s + 20*time.Minute}
	if len(got) != len(wantAt) {
		t.Fatalf("got %v", got)
	}
	for i, g := range got {
		if g.at != wantAt[i] {
			t.Errorf("advert %d at %v, want %v", i, g.at, wantAt[i])
		}
	}
}

func TestSchedulerStandbyStopsAndActiveResumes(t *testing.T) {
	sc := NewScheduler(3 * s)
	sc.SetActive(0, true)
	run(sc, 0, 7*s) // 0, 3, 6
	sc.SetActive(7*s, false)
	if sc.Next() != NoDeadline {
		t.Fatal("standby still has a deadline")
	}
	if got := run(sc, 7*s, time.Minute); len(got) != 0 {
		t.Fatalf("standby sent %v", got)
	}
	// Active again: at once, and the sequence continues (no restart).
	sc.SetActive(time.Minute, true)
	got := run(sc, time.Minute, time.Minute+4*s)
	if len(got) != 2 || got[0].at != time.Minute || got[0].Reason != Activated || got[0].Sequence != 3 || got[1].Sequence != 4 {
		t.Fatalf("got %v", got)
	}
}

// A role flap within MinGap cannot make two advertisements within MinGap.
func TestSchedulerFlapRateLimited(t *testing.T) {
	sc := NewScheduler(3 * s)
	sc.SetActive(0, true)
	drain(sc, 0)
	sc.SetActive(100*time.Millisecond, false)
	sc.SetActive(200*time.Millisecond, true)
	if got := drain(sc, 200*time.Millisecond); len(got) != 0 {
		t.Fatalf("sent within MinGap: %v", got)
	}
	if sc.Next() != MinGap {
		t.Fatalf("next %v, want %v", sc.Next(), MinGap)
	}
	if got := drain(sc, MinGap); len(got) != 1 || got[0].Reason != Activated {
		t.Fatalf("got %v", got)
	}
	if sc.Stats().RateLimitedActivations != 1 {
		t.Fatalf("%+v", sc.Stats())
	}
}

func TestSchedulerSolicitations(t *testing.T) {
	sc := NewScheduler(10 * s)
	sc.SetActive(0, true)
	drain(sc, 0)
	// Long after the last advert: answered at once, and the interval
	// restarts from the answer.
	sc.Solicit(5 * s)
	got := drain(sc, 5*s)
	if len(got) != 1 || got[0].Reason != Solicited || got[0].Sequence != 1 {
		t.Fatalf("got %v", got)
	}
	if sc.Next() != 15*s {
		t.Fatalf("next periodic %v, want 15s", sc.Next())
	}
	// A burst right after: one answer, at last+MinGap.
	for i := range 50 {
		sc.Solicit(5*s + time.Duration(i)*10*time.Millisecond)
	}
	if got := drain(sc, 5*s+500*time.Millisecond); len(got) != 0 {
		t.Fatalf("answered within MinGap: %v", got)
	}
	if sc.Next() != 6*s {
		t.Fatalf("next %v, want 6s", sc.Next())
	}
	tg := run(sc, 6*s, 16*s)
	if len(tg) != 2 || tg[0].Reason != Solicited || tg[0].at != 6*s || tg[1].Reason != Periodic || tg[1].at != 16*s {
		t.Fatalf("got %v", tg)
	}
	st := sc.Stats()
	if st.Solicitations != 51 || st.SolicitationsCoalesced != 49 || st.Sent[Solicited] != 2 {
		t.Fatalf("%+v", st)
	}
}

// Bound: whatever arrives, no two advertisements are closer than MinGap
// (apart from the final one), and none is more than the interval apart.
func TestSchedulerRateBound(t *testing.T) {
	sc := NewScheduler(2 * s)
	var last time.Duration = -time.Hour
	n := 0
	for now := time.Duration(0); now < 60*s; now += 37 * time.Millisecond {
		switch {
		case now == 0:
			sc.SetActive(now, true)
		case n%97 == 50:
			sc.SetActive(now, false)
			sc.SetActive(now, true)
		default:
			sc.Solicit(now)
		}
		n++
		for _, x := range drain(sc, now) {
			if now-last < MinGap {
				t.Fatalf("%v after the previous one (%v)", now-last, x)
			}
			if last >= 0 && now-last > 2*s+37*time.Millisecond {
				t.Fatalf("gap %v", now-last)
			}
			last = now
		}
	}
}

func TestSchedulerShutdown(t *testing.T) {
	sc := NewScheduler(3 * s)
	sc.SetActive(0, true)
	run(sc, 0, 4*s) // seq 0 and 1
	f, ok := sc.Shutdown(4500 * time.Millisecond)
	if !ok || !f.Withdraw || f.Reason != Final || f.Sequence != 2 {
		t.Fatalf("final %+v %v", f, ok)
	}
	if _, ok := sc.Shutdown(5 * s); ok {
		t.Fatal("second final")
	}
	sc.SetActive(6*s, true)
	sc.Solicit(6 * s)
	if got := run(sc, 6*s, time.Hour); len(got) != 0 {
		t.Fatalf("sent after shutdown: %v", got)
	}
	// Shutting down while standby sends nothing.
	sb := NewScheduler(3 * s)
	if _, ok := sb.Shutdown(0); ok {
		t.Fatal("standby sent a final advertisement")
	}
}

func TestSchedulerSequenceWraps(t *testing.T) {
	sc := NewScheduler(time.Second)
	sc.SetActive(0, true)
	got := run(sc, 0, 65537*s)
	if len(got) != 65538 {
		t.Fatalf("%d adverts", len(got))
	}
	if got[0].Sequence != 0 || got[0xffff].Sequence != 0xffff || got[0x10000].Sequence != 256 || got[0x10001].Sequence != 257 {
		t.Fatalf("sequence around the wrap: %d %d %d %d", got[0].Sequence, got[0xffff].Sequence, got[0x10000].Sequence, got[0x10001].Sequence)
	}
}

func TestSchedulerZeroAllocs(t *testing.T) {
	sc := NewScheduler(time.Second)
	sc.SetActive(0, true)
	now := time.Duration(0)
	n := testing.AllocsPerRun(1000, func() {
		now += 300 * time.Millisecond
		sc.Solicit(now)
		for {
			if _, ok := sc.Poll(now); !ok {
				break
			}
		}
		_ = sc.Next()
	})
	if n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
