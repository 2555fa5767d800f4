package deadline

import "time"

// minPeriod is the shortest cadence the kernel is asked to repeat: a
// shorter step between two deadlines is a coincidence of the owner's
// arithmetic, not a schedule worth a periodic timer.
const minPeriod = time.Millisecond

// arming is what the kernel holds for the owner's deadline.
type arming struct {
	at time.Duration // the owner's deadline (Never: disarmed)
	// period > 0: the kernel re-arms itself every period after at, on at's
	// grid (the timerfd's it_interval); 0: it fires once.
	period time.Duration
	// step is the last move, at minus the deadline before it (0: none).
	step time.Duration
	// grid and every: a point and the period of the cadence the kernel
	// held before this one-shot arming (every 0: none). A deadline that
	// left a cadence for one jittered arrival or one other timer comes
	// back to its grid, and is on the cadence again at once.
	grid, every time.Duration
}

// plan decides what Set(to) at now costs: the new arming, and whether the
// kernel must be told (one timerfd_settime of next.at, repeating every
// next.period if that is > 0). slack is how late the owner lets the timer
// fire: the kernel is armed anywhere in [to, to+slack] (exactly to when
// slack is 0, or when to has passed: then it fires at once).
//
// A deadline that moves by the same step twice in a row (an advertisement
// timer, a heartbeat schedule) is a cadence: the kernel is armed once to
// repeat it, and from then on a deadline set to the kernel's next expiry
// is free. That is the first point of the grid after now, once the current
// deadline has passed: the timerfd re-arms itself when its expiration is
// read (timerfd_read), to the first point of the grid after the read, which
// came before now (the read precedes the tick), or comes later and then
// ticks for the new deadline if it has passed by then. Now is never behind
// the kernel's clock (setBase), so a deadline after now is still ahead for
// the kernel too. Any other deadline is one timerfd_settime, fired once, as
// without a cadence.
//
// With slack, a deadline is on the cadence when the kernel's next expiry
// (or the armed deadline, still ahead) lies in its window: a deadline that
// follows the arrival of a periodic message (VRRP's Master_Down_Timer)
// moves by the sender's period plus the arrival's jitter, microseconds,
// and is then free all the same. A deadline re-armed outside the cadence
// makes one where the last step, rounded to the slack's grain (grain), and
// repeated falls in its window; else it is armed in the middle of its
// window, so that later deadlines jittered either way by up to slack/2
// still find the grid in theirs. A one-shot arming remembers the cadence
// it left (one late arrival, one other timer in between): a later
// deadline whose window holds a point of that grid returns to it at once,
// periodic. With no slack all this is the exact rule above.
func plan(cur arming, to, slack, now time.Duration) (next arming, settime bool) {
	if to >= Never || int64(to) > 1<<62 { // beyond any uptime: never
		if cur.at == Never {
			return cur, false
		}
		return arming{at: Never}, true
	}
	slack = max(slack, 0)
	in := func(at time.Duration) bool { return to <= at && at-to <= slack && at > now }
	if cur.at != Never && to > now && in(cur.at) {
		return cur, false
	}
	if cur.period > 0 && cur.at != Never && cur.at <= now && to > now {
		// The kernel's next expiry: the grid's first point after now.
		if e := cur.at + ((now-cur.at)/cur.period+1)*cur.period; in(e) {
			return arming{at: e, period: cur.period, step: cur.period}, false
		}
	}
	// What a one-shot arming remembers of the cadence before it.
	grid, every := cur.grid, cur.every
	if cur.period > 0 {
		grid, every = cur.at, cur.period
	}
	at := to
	if to > now {
		at = to + slack/2
		if cur.period == 0 && every > 0 {
			// The remembered grid's first point at or after to.
			e := grid + (to-grid)/every*every
			if e < to {
				e += every
			}
			if in(e) {
				return arming{at: e, period: every, step: every}, true
			}
		}
		if cur.at != Never {
			if q := grain(cur.step, slack); q >= minPeriod && in(cur.at+q) {
				// The last step again, on the slack's grain: a cadence.
				return arming{at: cur.at + q, period: q, step: q}, true
			}
		}
	}
	var step time.Duration
	if cur.at != Never {
		step = at - cur.at
	}
	if step >= minPeriod && step == cur.step && at > now {
		return arming{at: at, period: step, step: step}, true
	}
	return arming{at: at, step: step, grid: grid, every: every}, true
}

// grain rounds step to the nearest multiple of slack (step itself when
// slack is 0). A step measured between jittered arrivals is the sender's
// period plus noise; the sender's period is a round figure (VRRP counts in
// centiseconds), so on this grain a cadence keeps to its sender's grid
// instead of drifting by the one jitter it was first measured with.
func grain(step, slack time.Duration) time.Duration {
	if slack <= 0 {
		return step
	}
	return (step + slack/2) / slack * slack
}
