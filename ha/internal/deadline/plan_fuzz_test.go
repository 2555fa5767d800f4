package deadline

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// ktimer models a CLOCK_MONOTONIC timerfd armed with TFD_TIMER_ABSTIME as
// fs/timerfd.c runs it: an expiry fires once and sets expired; a periodic
// one is forwarded (hrtimer_forward_now: the first point of its grid after
// the read) only when its expiration is read; timerfd_settime cancels and
// clears the count.
type ktimer struct {
	armed, expired bool
	v, iv          time.Duration
	ticks          uint64
	fireAt         time.Duration // when the current expiry fires (armed && !expired)
}

func (k *ktimer) settime(a arming, now time.Duration) {
	k.ticks, k.expired = 0, false
	if a.at == Never {
		k.armed = false
		return
	}
	k.armed, k.v, k.iv = true, max(a.at, 0), a.period
	k.fireAt = max(k.v, now)
}

// read is the reader goroutine's read at r: the count, re-arming a periodic
// timer.
func (k *ktimer) read(r time.Duration) bool {
	if k.ticks == 0 {
		return false
	}
	k.ticks = 0
	if k.expired && k.iv > 0 {
		k.v += ((r-k.v)/k.iv + 1) * k.iv
		k.expired = false
		k.fireAt = k.v
	}
	return true
}

// simTimer is Timer's Set over the model, with the reader goroutine reading
// each expiration lat after it fires.
type simTimer struct {
	k     ktimer
	arm   arming
	slack time.Duration
	now   time.Duration
	lat   time.Duration
	// readAt: when the reader reads the pending expiration (-1: none).
	readAt time.Duration
}

func (s *simTimer) set(to time.Duration) (arming, bool) {
	next, settime := plan(s.arm, to, s.slack, s.now)
	s.arm = next
	if settime {
		s.k.settime(next, s.now)
		s.readAt = -1
	}
	return next, settime
}

// run advances to until, or to the first tick the owner would receive
// (Due at the read), whichever is first; it reports the tick's time.
func (s *simTimer) run(until time.Duration) (time.Duration, bool) {
	for i := 0; ; i++ {
		if i > 1e6 {
			panic(fmt.Sprintf("model stuck at %v: %+v", s.now, *s))
		}
		next := until
		if s.k.armed && !s.k.expired && s.k.fireAt < next {
			next = s.k.fireAt
		}
		if s.readAt >= 0 && s.readAt < next {
			next = s.readAt
		}
		if next > s.now {
			s.now = next
		}
		switch {
		case s.readAt >= 0 && s.readAt <= s.now:
			s.readAt = -1
			if s.k.read(s.now) && s.arm.at != Never && s.now >= s.arm.at {
				return s.now, true
			}
		case s.k.armed && !s.k.expired && s.k.fireAt <= s.now:
			s.k.expired = true
			s.k.ticks++
			if s.readAt < 0 {
				s.readAt = s.now + s.lat
			}
		default:
			return 0, false
		}
	}
}

// FuzzPlan plays an owner that Sets deadlines (on a jittered cadence,
// anywhere, passed, Never) at its ticks and in between over the model of
// the kernel's timerfd, and checks what plan promises: a deadline ahead
// is armed in [to, to+slack], a passed one at once; the owner receives a
// tick for the deadline it set no later than the armed time plus the
// reader's latency, and never one after Never.
func FuzzPlan(f *testing.F) {
	f.Add(uint16(100), uint16(1000), uint16(200), uint8(10), []byte{0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0})
	f.Add(uint16(300), uint16(1000), uint16(300), uint8(0), []byte{0, 0, 0, 3, 0, 0, 4, 0, 0, 1, 1, 1})
	f.Add(uint16(7), uint16(20000), uint16(5000), uint8(200), []byte{0, 1, 0, 1, 5, 0, 0, 6, 0, 0, 0})
	f.Fuzz(func(t *testing.T, periodMs, slackUs, jitterUs uint16, latUs uint8, ops []byte) {
		planCase(t, fuzzArgs{periodMs, slackUs, jitterUs, latUs, ops})
	})
}

// TestPlanKernelModel is FuzzPlan over pseudo-random inputs, so that go
// test without -fuzz explores more than the seeds.
func TestPlanKernelModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for range n {
		ops := make([]byte, 1+rng.IntN(60))
		for j := range ops {
			ops[j] = byte(rng.Uint32())
		}
		planCase(t, fuzzArgs{uint16(rng.Uint32()), uint16(rng.Uint32()), uint16(rng.Uint32()), uint8(rng.Uint32()), ops})
	}
}

type fuzzArgs struct {
	periodMs, slackUs, jitterUs uint16
	latUs                       uint8
	ops                         []byte
}

func planCase(t *testing.T, a fuzzArgs) {
	periodMs, slackUs, jitterUs, latUs, ops := a.periodMs, a.slackUs, a.jitterUs, a.latUs, a.ops
	ops = ops[:min(len(ops), 256)]
	const ms, us = time.Millisecond, time.Microsecond
	p := time.Duration(periodMs%1000+1) * ms
	s := &simTimer{arm: arming{at: Never}, slack: time.Duration(slackUs) * us * 16, lat: time.Duration(latUs) * 20 * us, readAt: -1}
	jit := time.Duration(jitterUs)*us + 1
	to := time.Duration(0)
	rnd := uint64(1)
	r := func(n time.Duration) time.Duration {
		rnd = rnd*6364136223846793005 + 1442695040888963407
		return time.Duration((rnd >> 33) % uint64(n))
	}
	var log []string
	fail := func(format string, args ...any) {
		t.Helper()
		for _, l := range log {
			t.Log(l)
		}
		t.Fatalf("%+v: "+format, append([]any{a}, args...)...)
	}
	for len(ops) > 0 {
		op := ops[0]
		ops = ops[1:]
		var x byte
		if len(ops) > 0 {
			x = ops[0]
		}
		// Between Sets: the owner either waits for its tick or is
		// woken earlier (an arrival) x/256 of the way to its deadline.
		if op%2 == 0 && s.arm.at != Never {
			at, setAt := s.arm.at, s.now
			limit := max(at, setAt) + s.lat
			got, ok := s.run(limit + 10*p)
			if !ok || got > limit {
				fail("deadline %v armed at %v for %v (%+v): tick at %v (received %v), want by %v", to, setAt, at, s.arm, got, ok, limit)
			}
			if got < to {
				fail("deadline %v: tick at %v, before it", to, got)
			}
		} else if s.arm.at != Never {
			until := s.now + (max(s.arm.at-s.now, 0)*time.Duration(x))/256
			if got, ok := s.run(until); ok && got < to {
				fail("deadline %v: tick at %v, before it", to, got)
			}
		} else {
			s.run(s.now + time.Duration(x)*ms)
			if s.k.armed {
				fail("Never: the kernel is still armed (%+v)", s.k)
			}
		}
		switch op / 2 % 8 {
		case 0, 1, 2, 3: // the cadence, jittered
			to += p + r(jit) - jit/2
		case 4: // anywhere ahead
			to = s.now + r(3*p) + 1
		case 5: // passed
			to = s.now - r(p)
		case 6: // moved earlier, still ahead
			to = s.now + r(max(to-s.now, 1)) + 1
		case 7:
			to = Never
		}
		if to != Never && to < 0 {
			to = 0
		}
		before := s.arm
		next, set := s.set(to)
		log = append(log, fmt.Sprintf("now %v Set(%v): %+v -> %+v settime %v", s.now, to, before, next, set))
		switch {
		case to == Never:
			if next.at != Never {
				fail("Set(Never) armed %+v", next)
			}
		case to > s.now:
			if next.at < to || next.at > to+s.slack {
				fail("Set(%v) at %v with slack %v armed %v", to, s.now, s.slack, next.at)
			}
		default:
			if next.at != to {
				fail("Set(%v), passed at %v: armed %v, want at once", to, s.now, next.at)
			}
		}
		if to == Never {
			to = s.now + p // the cadence resumes from here
		}
	}
}
