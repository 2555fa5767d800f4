package vrrp

import (
	"net/netip"
	"time"
)

// ReasonSilent is the role change reason of a takeover the group heartbeat
// brought forward.
const ReasonSilent = "master's group heartbeat stopped, skew time expired"

// peerSilent is the fast failure detector's hook (the agent's group
// heartbeat, hasync): the member at ev.Src has been silent for ev.Silent,
// longer than its heartbeat detection time. If it is the master this
// backup follows, the backup acts as if the master had resigned (§6.4.2):
// Master_Down_Timer becomes Skew_Time, computed on the heartbeat interval
// (ev.Interval) instead of the advertisement interval, so that among
// several backups the highest priority still takes over first and the
// others hear its advertisement before their own skew runs out.
//
// VRRP keeps the last word: nothing happens unless this router is Backup,
// the silent member is the master it last heard, and no advertisement of
// that master was learnt more than one heartbeat interval after its last
// heartbeat (by then a heartbeat was missing while its election still
// ran: only its group protocol stalled, and taking over would make two
// masters). A crashed master's last advertisement always precedes its
// next heartbeat, so a crash is never filtered out. A master that is alive
// after all makes this router Backup again with its next advertisement
// (higher priority), as after any spurious takeover.
func (m *Machine) peerSilent(now time.Duration, ev Event) {
	if m.state != Backup || !ev.Src.IsValid() || ev.Src != m.master || m.resigned {
		return
	}
	if m.heardAt > now-ev.Silent+ev.Interval {
		return
	}
	at := now + time.Duration(256-int64(m.Priority()))*ev.Interval/256
	if at < m.masterDownTimer {
		m.masterDownTimer = at
		m.silent, m.silentFrom = true, ev.Src
	}
}

// ReasonAlive is the role change reason of a takeover undone.
const ReasonAlive = "the master taken over on its heartbeat's silence spoke again"

// peerAlive undoes a takeover the heartbeat caused, when the master it
// replaced turns out to be alive (its group messages resumed in the same
// session: it was stalled or its messages were lost, not dead): this
// router goes back to Backup at once, following that master, instead of
// staying a second master until its next advertisement (up to a whole
// advertisement interval, 1 s by default, measured). Before its takeover
// (Master_Down_Timer pulled in to the skew) the hint is simply withdrawn:
// the timer goes back to Master_Down_Interval from now.
func (m *Machine) peerAlive(now time.Duration, ev Event, out []Action) []Action {
	switch {
	case m.state == Master && m.replaced.IsValid() && ev.Src == m.replaced:
		m.replaced = netip.Addr{}
		return m.becomeBackup(now, Event{Src: ev.Src}, ReasonAlive, out)
	case m.state == Backup && m.silent && ev.Src == m.silentFrom:
		m.silent = false
		m.masterDownTimer = now + m.MasterDownInterval()
	}
	return out
}
