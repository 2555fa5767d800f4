package deadline

// WallStep guards the conversion of kernel receive stamps to a monotonic
// clock. The kernel stamps a datagram on the wall clock (SO_TIMESTAMPNS:
// CLOCK_REALTIME) and a lazy reader places it on its monotonic clock by
// its age, wall now − stamp. If the wall clock was stepped between the
// arrival and the read (NTP or an operator setting the time, typically
// soon after boot), that age is off by the step: a step forward makes a
// datagram look older than it is, and an advertisement or heartbeat that
// kept a peer alive would count for nothing (a takeover from a live
// master); a step back makes it look younger. A reader asks Steady at each
// read: false when the offset between the two clocks moved by more than
// slewing can explain since the last read, and the reader then takes what
// it reads as arriving now: later than true at worst, which delays a
// verdict by at most the time the datagrams waited, never hastens one.
type WallStep struct {
	off, mono int64
	set       bool
}

// wallSlack is the offset change always taken for slewing or rounding;
// beyond it, 1 ms per second elapsed (adjtime slews at most 0.5 ms/s).
const wallSlack = 10e6

// Steady records the two clocks' offset at a read (wall: Unix ns; mono:
// the reader's monotonic ns) and reports whether stamps read now may be
// placed by their age. The first read is steady: stamps come from after
// the socket was opened, by which time the reader has a baseline if it
// called Steady when it opened it.
func (w *WallStep) Steady(wall, mono int64) bool {
	off := wall - mono
	ok := true
	if w.set {
		d := off - w.off
		if d < 0 {
			d = -d
		}
		ok = d <= wallSlack+(mono-w.mono)/1000
	}
	w.off, w.mono, w.set = off, mono, true
	return ok
}
