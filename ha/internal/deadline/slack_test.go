package deadline

import (
	"testing"
	"time"
)

func TestPlanSlack(t *testing.T) {
	const ms, us = time.Millisecond, time.Microsecond
	const p = 300 * ms
	const s = ms
	oneShot := func(at, step time.Duration) arming { return arming{at: at, step: step} }
	periodic := func(at time.Duration) arming { return arming{at: at, period: p, step: p} }
	left := func(a arming, grid time.Duration) arming { a.grid, a.every = grid, p; return a }
	for _, c := range []struct {
		name    string
		cur     arming
		to, now time.Duration
		want    arming
		settime bool
	}{
		{"first deadline: the middle of its window", arming{at: Never}, 361 * ms, 0, oneShot(361*ms+s/2, 0), true},
		{"passed: at once, not later", oneShot(50*ms, 0), 40 * ms, 45 * ms, oneShot(40*ms, -10*ms), true},
		{"armed, ahead, in the window", oneShot(361*ms, 0), 360*ms + 400*us, 10 * ms, oneShot(361*ms, 0), false},
		{"armed, ahead, before the window", oneShot(361*ms, 0), 361*ms + us, 10 * ms, oneShot(361*ms+us+s/2, us+s/2), true},
		{"armed, ahead, after the window", oneShot(361*ms, 0), 359 * ms, 10 * ms, oneShot(359*ms+s/2, -2*ms+s/2), true},
		{"the last step repeated is in the window: a cadence", oneShot(661*ms, p), 961*ms - 300*us, 662 * ms, periodic(961 * ms), true},
		{"the last step repeated is not: the middle", oneShot(661*ms, p), 961*ms + 300*us, 662 * ms, oneShot(961*ms+800*us, p+800*us), true},
		{"cadence: the next expiry in the window", periodic(961 * ms), 1261*ms - 700*us, 962 * ms, periodic(1261 * ms), false},
		{"cadence: the next expiry at the window's end", periodic(961 * ms), 1261*ms - s, 962 * ms, periodic(1261 * ms), false},
		{"cadence: the next expiry just after the window", periodic(961 * ms), 1261*ms - s - us, 962 * ms, left(oneShot(1261*ms-s-us+s/2, p-s-us+s/2), 961*ms), true},
		{"cadence: the next expiry before the deadline", periodic(961 * ms), 1261*ms + us, 962 * ms, left(oneShot(1261*ms+us+s/2, p+us+s/2), 961*ms), true},
		{"cadence: late wake-up, the grid's first point after now", periodic(961 * ms), 1561*ms - 100*us, 1300 * ms, periodic(1561 * ms), false},
		{"left the cadence for a late arrival: back on its grid", left(oneShot(1261*ms+us+s/2, p+us+s/2), 961*ms), 1561*ms - 400*us, 1262 * ms, periodic(1561 * ms), true},
		{"cadence: the deadline passed: at once", periodic(961 * ms), 1200 * ms, 1210 * ms, left(oneShot(1200*ms, 239*ms), 961*ms), true},
	} {
		got, settime := plan(c.cur, c.to, s, c.now)
		if got != c.want || settime != c.settime {
			t.Errorf("%s: plan(%+v, %v, slack %v, now %v) = %+v, settime %v; want %+v, %v",
				c.name, c.cur, c.to, s, c.now, got, settime, c.want, c.settime)
		}
	}
}

// jitter is a deterministic spread of arrival or wake-up delays in
// [0, max): a linear congruential sequence.
type jitter struct{ x uint64 }

func (j *jitter) next(max time.Duration) time.Duration {
	j.x = j.x*6364136223846793005 + 1442695040888963407
	return time.Duration((j.x >> 33) % uint64(max))
}

// follow plays a backup that reads its master's adverts at its own
// wake-ups (the VRRP lazy reading): adverts leave every period and arrive
// up to arrive late, every 25th spike later still; the backup wakes when
// the kernel fires (up to wake late), takes the newest advert that has
// arrived by then and sets its Master_Down_Timer, down after it. It
// returns the timerfd_settime count over n wake-ups and how many of the
// deadlines counted from a spiked advert, and fails if the kernel was ever
// armed before a deadline or later than slack after it.
func follow(t *testing.T, slack, period, down, arrive, spike, wake time.Duration, n int) (settimes, spiked int) {
	t.Helper()
	j := jitter{x: 1}
	arrival := func(k int64) time.Duration {
		a := time.Duration(k)*period + j.next(arrive)
		if k%25 == 0 {
			a += spike
		}
		return a
	}
	cur := arming{at: Never}
	last, lastK := arrival(0), int64(0)
	next, set := plan(cur, last+down, slack, last)
	cur = next
	if set {
		settimes++
	}
	sent := int64(1)
	for range n {
		now := cur.at + j.next(wake)
		for ; time.Duration(sent)*period < now; sent++ { // adverts sent by now; the newest arrived is taken
			if a := arrival(sent); a < now {
				last, lastK = a, sent
			}
		}
		to := last + down
		if lastK%25 == 0 && spike > 0 {
			spiked++
		}
		next, set := plan(cur, to, slack, now)
		if next.at < to || next.at > to+slack {
			t.Fatalf("Set(%v) with slack %v at %v armed the kernel for %v", to, slack, now, next.at)
		}
		cur = next
		if set {
			settimes++
		}
	}
	return settimes, spiked
}

// A Master_Down_Timer that follows adverts arriving with microseconds of
// jitter is a cadence within a millisecond's slack: the kernel re-arms it,
// not one timerfd_settime per wake-up. Without slack it is one every time.
// An advert later than the slack takes the deadline off the cadence for
// one wake-up: it costs two timerfd_settime, off the grid and back on it.
func TestSlackFollowsJitteredArrivals(t *testing.T) {
	const us, ms = time.Microsecond, time.Millisecond
	const n = 200
	down := 3*100*ms + 156*100*ms/256 // priority 100 at 100 ms adverts
	if got, _ := follow(t, 0, 100*ms, down, 200*us, 0, 100*us, n); got < n*9/10 {
		t.Fatalf("without slack: %d timerfd_settime in %d wake-ups, want about one each (is the jitter simulated?)", got, n)
	}
	if got, _ := follow(t, ms, 100*ms, down, 200*us, 0, 100*us, n); got > 3 {
		t.Fatalf("with 1 ms of slack: %d timerfd_settime in %d wake-ups, want at most 3", got, n)
	}
	got, spiked := follow(t, ms, 100*ms, down, 200*us, 3*ms, 100*us, n)
	if spiked == 0 {
		t.Fatal("no deadline counted from a late advert: the spikes are not simulated")
	}
	if got > 3+2*spiked {
		t.Fatalf("with 1 ms of slack and %d adverts 3 ms late: %d timerfd_settime in %d wake-ups, want at most %d",
			spiked, got, n, 3+2*spiked)
	}
}

// A deadline already on a cadence (the master's Adver_Timer) keeps it with
// slack: the kernel repeats the exact period from the third timerfd_settime,
// and every advert leaves the same offset, at most slack, after its
// deadline.
func TestSlackKeepsCadence(t *testing.T) {
	const ms = time.Millisecond
	const p = 100 * ms
	for _, slack := range []time.Duration{0, ms} {
		cur := arming{at: Never}
		settimes := 0
		var fired []time.Duration
		to := 17 * ms
		for range 50 {
			next, set := plan(cur, to, slack, cur.at)
			if cur.at == Never {
				next, set = plan(cur, to, slack, 0)
			}
			if set {
				settimes++
			}
			cur = next
			fired = append(fired, cur.at)
			to += p
		}
		if settimes != 3 || cur.period != p {
			t.Errorf("slack %v: %d timerfd_settime and period %v over 50 adverts, want 3 and %v", slack, settimes, cur.period, p)
		}
		for i := 1; i < len(fired); i++ {
			if d := fired[i] - fired[i-1]; i > 1 && d != p {
				t.Fatalf("slack %v: advert %d fired %v after the one before, want %v", slack, i, d, p)
			}
		}
		if off := fired[len(fired)-1] - (to - p); off < 0 || off > slack {
			t.Errorf("slack %v: the last advert fired %v after its deadline", slack, off)
		}
	}
}
