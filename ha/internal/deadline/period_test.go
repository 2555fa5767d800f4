package deadline

import (
	"testing"
	"time"
)

func TestPlan(t *testing.T) {
	const ms = time.Millisecond
	const p = 100 * ms
	oneShot := func(at, step time.Duration) arming { return arming{at: at, step: step} }
	periodic := func(at time.Duration) arming { return arming{at: at, period: p, step: p} }
	// left is a one-shot arming that remembers the cadence on grid.
	left := func(a arming, grid time.Duration) arming { a.grid, a.every = grid, p; return a }
	for _, c := range []struct {
		name    string
		cur     arming
		to, now time.Duration
		want    arming
		settime bool
	}{
		{"disarmed stays disarmed", arming{at: Never}, Never, 0, arming{at: Never}, false},
		{"beyond any uptime is never", arming{at: Never}, 1<<62 + 1, 0, arming{at: Never}, false},
		{"disarm", oneShot(5*ms, 0), Never, 0, arming{at: Never}, true},
		{"disarm a cadence", periodic(5 * ms), Never, 0, arming{at: Never}, true},
		{"first deadline", arming{at: Never}, 50 * ms, 0, oneShot(50*ms, 0), true},
		{"unchanged, ahead", oneShot(50*ms, 7*ms), 50 * ms, 10 * ms, oneShot(50*ms, 7*ms), false},
		{"unchanged, passed: fires again", oneShot(50*ms, 7*ms), 50 * ms, 60 * ms, oneShot(50*ms, 0), true},
		{"first move", oneShot(50*ms, 0), 150 * ms, 55 * ms, oneShot(150*ms, p), true},
		{"second equal move: a cadence", oneShot(150*ms, p), 250 * ms, 155 * ms, periodic(250 * ms), true},
		{"second equal move, already passed", oneShot(150*ms, p), 250 * ms, 260 * ms, oneShot(250*ms, p), true},
		{"equal moves below minPeriod", oneShot(150*ms, minPeriod/2), 150*ms + minPeriod/2, 0, oneShot(150*ms+minPeriod/2, minPeriod/2), true},
		{"different move", oneShot(150*ms, p), 260 * ms, 155 * ms, oneShot(260*ms, 110*ms), true},
		{"moved earlier", oneShot(150*ms, p), 100 * ms, 55 * ms, oneShot(100*ms, -50*ms), true},
		{"cadence: the kernel's next expiry", periodic(250 * ms), 350 * ms, 253 * ms, periodic(350 * ms), false},
		{"cadence: the next expiry after a late wake-up", periodic(250 * ms), 550 * ms, 480 * ms, periodic(550 * ms), false},
		{"cadence: a grid point beyond the next expiry", periodic(250 * ms), 450 * ms, 253 * ms, left(oneShot(450*ms, 2*p), 250*ms), true},
		{"cadence: moved on before it fired", periodic(250 * ms), 350 * ms, 240 * ms, periodic(350 * ms), true},
		{"cadence: the next expiry, already passed", periodic(250 * ms), 350 * ms, 351 * ms, left(oneShot(350*ms, p), 250*ms), true},
		{"cadence: off the grid", periodic(250 * ms), 351 * ms, 253 * ms, left(oneShot(351*ms, 101*ms), 250*ms), true},
		{"cadence: earlier", periodic(250 * ms), 230 * ms, 200 * ms, left(oneShot(230*ms, -20*ms), 250*ms), true},
		{"left the cadence: back on its grid", left(oneShot(351*ms, 101*ms), 250*ms), 450 * ms, 360 * ms, periodic(450 * ms), true},
		{"left the cadence: off its grid again", left(oneShot(351*ms, 101*ms), 250*ms), 455 * ms, 360 * ms, left(oneShot(455*ms, 104*ms), 250*ms), true},
		{"cadence: unchanged, ahead", periodic(250 * ms), 250 * ms, 200 * ms, periodic(250 * ms), false},
		{"cadence: unchanged, passed: fires again", periodic(250 * ms), 250 * ms, 260 * ms, left(oneShot(250*ms, 0), 250*ms), true},
	} {
		got, settime := plan(c.cur, c.to, 0, c.now)
		if got != c.want || settime != c.settime {
			t.Errorf("%s: plan(%+v, %v, now %v) = %+v, settime %v; want %+v, %v",
				c.name, c.cur, c.to, c.now, got, settime, c.want, c.settime)
		}
	}
}
