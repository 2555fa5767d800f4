package advert

import (
	"math"
	"time"
)

// NoDeadline is what Scheduler.Next returns when nothing is due ever
// (standby, or after the final advertisement).
const NoDeadline = time.Duration(math.MaxInt64)

// Timing constants (docs/advertise.md, "Timing").
const (
	// MinGap is the least time between two advertisements of ours,
	// whatever triggered them: RFC 5944 §2.3 asks agents to limit the rate
	// of multicast/broadcast advertisements and recommends at most one per
	// second. Solicitations and role flaps cannot push us past it.
	MinGap = time.Second
	// MaxInitialInterval and MaxInitialAdverts are RFC 1256's
	// MAX_INITIAL_ADVERT_INTERVAL and MAX_INITIAL_ADVERTISEMENTS: the first
	// advertisements after becoming active come at most 16 s apart even if
	// the configured interval is longer, so that nodes learn of a new agent
	// quickly.
	MaxInitialInterval = 16 * time.Second
	MaxInitialAdverts  = 3
)

// Reason says why an advertisement is sent.
type Reason uint8

const (
	Periodic  Reason = iota + 1 // the interval elapsed
	Activated                   // we just became the active agent
	Solicited                   // answer to an Agent Solicitation
	Final                       // graceful shutdown: lifetime 0
)

func (r Reason) String() string {
	switch r {
	case Periodic:
		return "periodic"
	case Activated:
		return "activated"
	case Solicited:
		return "solicited"
	case Final:
		return "final"
	}
	return "invalid"
}

// Send is one advertisement the scheduler wants sent now.
type Send struct {
	Reason   Reason
	Sequence uint16
	// Withdraw: send with ICMP lifetime 0 (the final advertisement).
	Withdraw bool
}

// SchedulerStats are the scheduler's counters.
type SchedulerStats struct {
	Sent                      [Final + 1]uint64 // per Reason
	Solicitations             uint64            // seen while active
	SolicitationsCoalesced    uint64            // folded into an answer already pending
	SolicitationsWhileStandby uint64            // ignored: the active agent answers
	RateLimitedActivations    uint64            // activation advert delayed by MinGap
}

// Scheduler decides when the agent advertises. It is a pure state machine:
// every method takes the current monotonic time; nothing sleeps, nothing
// does I/O. The runner calls Poll after every input and sleeps until Next.
//
// Rules (RFC 5944 §2.3, RFC 1256 §6):
//   - only while active; an advertisement at once on becoming active, the
//     next ones every interval (the first MaxInitialAdverts at most
//     MaxInitialInterval apart);
//   - any advertisement restarts the interval: the link never sees two
//     within MinGap, nor a gap longer than the interval while active;
//   - a solicitation is answered at once if the last advertisement is
//     MinGap old, else at last+MinGap; more solicitations meanwhile share
//     that one answer;
//   - sequence numbers count every advertisement sent since the scheduler
//     was created, from 0, wrapping 0xffff → 256 (§2.3.2: 0..255 mean "the
//     agent restarted"); standby/active changes do not reset them;
//   - Shutdown yields one last advertisement with lifetime 0 if active,
//     then nothing, ever.
type Scheduler struct {
	interval time.Duration

	active  bool
	stopped bool
	seq     uint16
	// next periodic advertisement (valid while active)
	next time.Duration
	// pending activation or solicitation answer, due at pendingAt
	pending   Reason
	pendingAt time.Duration
	last      time.Duration
	sentAny   bool
	// advertisements since becoming active, for the initial-interval cap
	sinceActive int

	stats SchedulerStats
}

// NewScheduler returns a standby scheduler advertising every interval once
// active. interval is clamped to at least MinGap.
func NewScheduler(interval time.Duration) *Scheduler {
	return &Scheduler{interval: max(interval, MinGap), next: NoDeadline}
}

// Active reports whether the scheduler advertises.
func (s *Scheduler) Active() bool { return s.active && !s.stopped }

// Sequence is the sequence number the next advertisement will carry.
func (s *Scheduler) Sequence() uint16 { return s.seq }

// Stats returns the counters.
func (s *Scheduler) Stats() SchedulerStats { return s.stats }

// SetActive starts (true) or stops (false) advertising. Becoming active
// schedules an advertisement right away (or at last+MinGap after a flap).
// Going standby sends nothing: the new active agent advertises from the
// same virtual address, and a lifetime-0 advertisement from us would tell
// the nodes that their (now healthy) agent went away.
func (s *Scheduler) SetActive(now time.Duration, active bool) {
	if s.stopped || active == s.active {
		return
	}
	s.active = active
	s.pending = 0
	s.next = NoDeadline
	if !active {
		return
	}
	s.sinceActive = 0
	s.pending, s.pendingAt = Activated, now
	if s.sentAny && now < s.last+MinGap {
		s.pendingAt = s.last + MinGap
		s.stats.RateLimitedActivations++
	}
}

// Solicit records an Agent Solicitation received at now.
func (s *Scheduler) Solicit(now time.Duration) {
	if !s.Active() {
		s.stats.SolicitationsWhileStandby++
		return
	}
	s.stats.Solicitations++
	if s.pending != 0 {
		s.stats.SolicitationsCoalesced++
		return
	}
	s.pending, s.pendingAt = Solicited, now
	if s.sentAny && now < s.last+MinGap {
		s.pendingAt = s.last + MinGap
	}
}

// Poll returns the advertisement due at now, if any, and accounts for it as
// sent. Call it until it returns false.
func (s *Scheduler) Poll(now time.Duration) (Send, bool) {
	if !s.Active() {
		return Send{}, false
	}
	r := Periodic
	switch {
	case s.pending != 0 && now >= s.pendingAt:
		r = s.pending
	case now >= s.next:
	default:
		return Send{}, false
	}
	out := s.take(now, r)
	s.pending = 0
	iv := s.interval
	if s.sinceActive < MaxInitialAdverts {
		iv = min(iv, MaxInitialInterval)
	}
	s.next = now + iv
	return out, true
}

// Shutdown stops the scheduler for good. If it was active, it returns the
// final advertisement (lifetime 0, RFC 1256 §6.2.6's "ceasing to be an
// advertising interface"), sent regardless of MinGap: it is the last one.
func (s *Scheduler) Shutdown(now time.Duration) (Send, bool) {
	if s.stopped {
		return Send{}, false
	}
	was := s.Active()
	s.stopped = true
	s.next, s.pending = NoDeadline, 0
	if !was {
		return Send{}, false
	}
	out := s.take(now, Final)
	out.Withdraw = true
	return out, true
}

func (s *Scheduler) take(now time.Duration, r Reason) Send {
	out := Send{Reason: r, Sequence: s.seq}
	s.seq = NextSequence(s.seq)
	s.last, s.sentAny = now, true
	s.sinceActive++
	s.stats.Sent[r]++
	return out
}

// NextSequence is §2.3.2's successor: +1, but 0xffff is followed by 256 so
// that 0..255 only ever follow a restart.
func NextSequence(seq uint16) uint16 {
	if seq == 0xffff {
		return 256
	}
	return seq + 1
}

// Next is when Poll will next have something to send (NoDeadline: never,
// until an input arrives).
func (s *Scheduler) Next() time.Duration {
	if !s.Active() {
		return NoDeadline
	}
	if s.pending != 0 {
		return min(s.pendingAt, s.next)
	}
	return s.next
}
