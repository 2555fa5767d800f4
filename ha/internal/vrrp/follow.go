package vrrp

import "time"

// What the runner's lazy reading (filter.go, lazy_linux.go) needs from the
// machine: which advertisement holds the Master_Down_Timer, and adverts
// handled after the fact at the time they arrived.

// Follows reports whether ev, an advert the machine has just handled, is
// one it follows: it is Backup, and ev's source, priority and interval are
// the master's it learnt, with nothing else pending on the timer (no
// resignation, no preemption under way or due by our own priority, no
// heartbeat verdict). A repeat of such an advert would only move the
// Master_Down_Timer, so it may be read late. Anything else (another sender, another priority or interval, a
// priority 0, any state but Backup) must be read at once.
func (m *Machine) Follows(ev Event) bool {
	return m.state == Backup && ev.Kind == EvAdvert && ev.Priority != 0 &&
		ev.Src == m.master && ev.Priority == m.masterPrio && ev.Interval == m.masterAdverInterval &&
		!m.resigned && !m.lowerSeen && !m.silent &&
		(!m.preempt() || ev.Priority >= m.Priority()) // else ours preempts it: read at once
}

// arrival is the time an advert counts from in Backup: now, or when it
// arrived if it was read after the fact (ev.Arrived), but never earlier
// than the last advert learnt: an older one read late must not move the
// Master_Down_Timer back.
func (m *Machine) arrival(now time.Duration, ev Event) time.Duration {
	if ev.Arrived <= 0 || ev.Arrived >= now {
		return now
	}
	return max(ev.Arrived, m.heardAt)
}
