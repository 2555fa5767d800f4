package agent

import (
	"testing"
	"time"
)

// When the election's wake-ups are wanted for reading heartbeats, and
// when arrivals wake the owner instead: always the wake-ups while this
// member heartbeats periodically; from the advertisement after which the
// next one could come later than a periodic peer's expiry; arrivals while
// a peer's heartbeat is not known yet (it just came up or restarted: read
// at once), or while none is pending and the member is not idle (no peer
// up, or a periodic active member is expected: a new active member's first
// periodic heartbeat must be read at once); neither while idle (every up
// peer in demand mode and known, as in a pair at the default): what
// arrives waits for the owner's next turn.
func TestAwakeFrom(t *testing.T) {
	const ms = int64(time.Millisecond)
	for _, tc := range []struct {
		periodic, known, idle bool
		expiry, period        int64
		want                  int64
		eager                 bool
	}{
		{true, true, false, 5000 * ms, 100 * ms, 0, false},
		{true, false, false, 0, 100 * ms, 0, false},
		{false, true, false, 0, 100 * ms, never, true},
		{false, false, false, 5000 * ms, 100 * ms, never, true},
		{false, true, false, 5000 * ms, 100 * ms, 4875 * ms, false},
		// idle: demand-mode peers only, all known
		{false, true, true, 0, 100 * ms, never, false},
		{false, false, true, 0, 100 * ms, never, true},
		{false, true, true, 5000 * ms, 100 * ms, 4875 * ms, false},
	} {
		if got, eager := awakeFrom(tc.periodic, tc.known, tc.idle, tc.expiry, tc.period); got != tc.want || eager != tc.eager {
			t.Errorf("awakeFrom(%v, %v, %v, %d, %d) = %d, %v; want %d, %v", tc.periodic, tc.known, tc.idle, tc.expiry, tc.period, got, eager, tc.want, tc.eager)
		}
	}
}

// A demand-mode refresh asks for the election's wake-ups from one
// advertisement interval and a quarter before it is due (the window
// electionAwake sends it in) when the election wakes at every
// advertisement, none when none is owed.
func TestDemandFrom(t *testing.T) {
	const ms = int64(time.Millisecond)
	if got := demandFrom(-1, 100*ms, 100*ms); got != never {
		t.Errorf("no refresh owed: from %d, want never", got)
	}
	if got := demandFrom(5000*ms, 100*ms, 100*ms); got != 4875*ms {
		t.Errorf("refresh due at 5 s: from %v, want 4.875s", time.Duration(got))
	}
	if got := demandFrom(0, 100*ms, 100*ms); got > 0 {
		t.Errorf("refresh due at once: from %v, want every wake-up", time.Duration(got))
	}
}

// Whatever the spacing of the election's wake-ups (a master's every
// advertisement, a lazily reading VRRP backup's every third, at its
// Master_Down_Timer), the window before a refresh holds one of them, late
// by up to a quarter interval: the refresh rides it instead of waking the
// member on its own timer. The spacing counts as at most four intervals.
func TestDemandWindowHoldsAWakeUp(t *testing.T) {
	const ms = int64(time.Millisecond)
	const period = 100 * ms
	for _, gap := range []int64{period, 2 * period, 3 * period, 4 * period} {
		for phase := int64(0); phase < gap; phase += 7 * ms {
			due := 5000*ms + phase
			from := demandFrom(due, period, gap)
			// The election's wake-ups: every gap from 0, each up to a
			// quarter interval late.
			last := due / gap * gap // the last one on the grid at or before due
			if last+period/4 > due && last-gap >= 0 {
				last -= gap // late, it could come after due
			}
			if last < from {
				t.Errorf("wake-ups %v apart, refresh due at %v: the window from %v holds none (last at %v)",
					time.Duration(gap), time.Duration(due), time.Duration(from), time.Duration(last))
			}
		}
	}
	if got, want := demandWindow(period, 50*period), 4*period+period/4; got != want {
		t.Errorf("a gap of 50 intervals (the first wake-up): window %v, want %v", time.Duration(got), time.Duration(want))
	}
	if got, want := demandWindow(period, 10*ms), period+period/4; got != want {
		t.Errorf("a gap of 10 ms (a packet between advertisements): window %v, want %v", time.Duration(got), time.Duration(want))
	}
}
