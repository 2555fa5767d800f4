package role

import "time"

// NextPeriodic is a periodic timer's next deadline (VRRP's Adver_Timer,
// HSRP's hello timer) after the one due at prev has fired at now. The
// protocols reset the timer to its interval when it fires; a timer fires
// late by its wake-up latency, so counting from the deadline rather than
// from now keeps the sends on a fixed grid (the deadline moves by exactly
// the interval: deadline.Timer then leaves re-arming to the kernel) and
// the latency does not add up. A wake-up later than half an interval (a
// stall) counts from now, as the protocols read: one send per wake-up, the
// next a whole interval later, never a burst catching up on missed ones.
func NextPeriodic(prev, now, interval time.Duration) time.Duration {
	if next := prev + interval; next >= now+interval/2 {
		return next
	}
	return now + interval
}
