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
}

// plan decides what Set(to) at now costs: the new arming, and whether the
// kernel must be told (one timerfd_settime of next.at, repeating every
// next.period if that is > 0).
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
func plan(cur arming, to, now time.Duration) (next arming, settime bool) {
	if to >= Never || int64(to) > 1<<62 { // beyond any uptime: never
		if cur.at == Never {
			return cur, false
		}
		return arming{at: Never}, true
	}
	if to == cur.at && to > now {
		return cur, false
	}
	if cur.period > 0 && cur.at != Never && cur.at <= now && now < to && to-cur.period <= now &&
		(to-cur.at)%cur.period == 0 {
		return arming{at: to, period: cur.period, step: cur.period}, false
	}
	var step time.Duration
	if cur.at != Never {
		step = to - cur.at
	}
	if step >= minPeriod && step == cur.step && to > now {
		return arming{at: to, period: step, step: step}, true
	}
	return arming{at: to, step: step}, true
}
