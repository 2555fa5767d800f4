package hasync

import (
	"net/netip"
	"time"
)

// A member configured with another group key is heard by nobody and hears
// nobody: without this, it silently falls behind while every table says
// "in sync". Authentication failures are therefore kept per source address
// (a few sources, least recently failed replaced), logged at most once per
// source per authLogEvery, and shown with the peer of that address.

const (
	authSources  = 8
	authLogEvery = 10 * time.Second
)

type authSource struct {
	addr   netip.Addr
	id     uint32 // agent id the message claimed (unauthenticated)
	n      uint64
	last   int64
	logged int64
}

// AuthSource is one source of messages that failed authentication.
type AuthSource struct {
	Addr     netip.Addr
	ID       uint32 // agent id the last failed message claimed (not authenticated)
	Failures uint64
	Last     int64 // monotonic ns of the last failure
}

// AuthSources appends the sources whose messages failed authentication.
func (m *Machine) AuthSources(dst []AuthSource) []AuthSource {
	for _, s := range m.badSrc {
		if s.n != 0 {
			dst = append(dst, AuthSource{Addr: s.addr, ID: s.id, Failures: s.n, Last: s.last})
		}
	}
	return dst
}

func (m *Machine) authFailed(now int64, src netip.Addr, id uint32, err error) {
	slot := 0
	for i := range m.badSrc {
		s := &m.badSrc[i]
		if s.n != 0 && s.addr == src {
			slot = i
			break
		}
		if s.n == 0 || s.last < m.badSrc[slot].last {
			slot = i
		}
	}
	s := &m.badSrc[slot]
	if s.n == 0 || s.addr != src {
		*s = authSource{addr: src}
	}
	s.id, s.last = id, now
	s.n++
	for i := range m.peers {
		if m.peers[i].addr == src {
			// Whatever the last digest said, this member cannot follow it.
			m.peers[i].inSync = false
		}
	}
	if s.logged == 0 || now-s.logged >= int64(authLogEvery) {
		s.logged = now
		m.log.Warn("hasync: group message failed authentication: is the same group key configured on every member?", "src", src, "claimed_id", id, "failures_from_src", s.n, "err", err)
	}
}

// authFailuresFrom returns the failures counted for addr and the last one.
func (m *Machine) authFailuresFrom(addr netip.Addr) (uint64, int64) {
	for _, s := range m.badSrc {
		if s.n != 0 && s.addr == addr {
			return s.n, s.last
		}
	}
	return 0, 0
}
