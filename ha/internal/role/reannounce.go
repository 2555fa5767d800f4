package role

import "time"

// Reannounce rate-limits the active member's re-announcements of the virtual
// address (gratuitous ARP after another member may have claimed it), the
// same for VRRP and HSRP: at most one per interval; a trigger inside the
// interval is counted and kept, and answered by one announcement when the
// interval ends, so that the hosts hear the active member last. Pure: the
// machines call it with their own now. The zero value allows at once.
type Reannounce struct {
	next       time.Duration // earliest next announcement
	pending    bool          // one is owed at next
	reason     string        // the first owed trigger's
	suppressed uint64
}

// Allow reports whether an announcement for reason may go at now (then it
// counts as made); otherwise the trigger is counted and one is owed at the
// interval's end (Due).
func (r *Reannounce) Allow(now, interval time.Duration, reason string) bool {
	if now < r.next {
		r.suppressed++
		if !r.pending {
			r.pending, r.reason = true, reason
		}
		return false
	}
	r.Sent(now, interval)
	return true
}

// Sent records an announcement made at now (a takeover's own burst) as the
// last one: nothing owed, the next not before now + interval.
func (r *Reannounce) Sent(now, interval time.Duration) {
	r.pending, r.next = false, now+interval
}

// Cancel forgets what is owed (the member stopped holding the address).
func (r *Reannounce) Cancel() { r.pending = false }

// Due returns the owed announcement's reason once its time has come.
func (r *Reannounce) Due(now time.Duration) (reason string, ok bool) {
	if r.pending && now >= r.next {
		return r.reason, true
	}
	return "", false
}

// Deadline is when the owed announcement is due; ok false when none is owed.
func (r *Reannounce) Deadline() (at time.Duration, ok bool) { return r.next, r.pending }

// Suppressed counts the triggers that came inside an interval.
func (r *Reannounce) Suppressed() uint64 { return r.suppressed }
