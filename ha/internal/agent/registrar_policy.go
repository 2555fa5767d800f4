package agent

import (
	"net/netip"

	"github.com/hagent/hagent/ha/mip"
)

// The replication policy: what a reply accepting a table change becomes
// when no peer acknowledged it (group.ack_before_reply,
// group.require_replication; docs/architecture.md "What accepted promises").

// releaseHeld seals and sends a reply leaving the hold queue; one
// no peer acknowledged goes through the replication policy first.
func (r *Registrar) releaseHeld(h *held, acked bool) {
	if !acked {
		r.unacked(&h.v)
	}
	r.sendOne(&h.v, h.to, h.ifindex)
}

// unacked applies the replication policy to an "accepted" verdict for a
// table change that no peer has acknowledged, when nothing more will be
// waited for: the wait is over, a newer request superseded it, this member
// stops being active or stops, or no peer is up to acknowledge it at all.
// It may turn v into a denial.
//
// With group.require_replication, or while a peer that has been
// acknowledging this member's updates is still up, the node is told 130
// (insufficient resources, RFC 5944 §3.4) instead: it retries, and a retry
// reaches whichever member is active then. The binding stays in the table
// and keeps replicating; a retry re-registers the same care-of, which is
// harmless. Otherwise this member serves alone, as an unreplicated group
// must, and counts every such acceptance: each is lost if this member dies
// before a peer returns.
//
// Why acking peers (hasync AckingPeers), not every up peer: a peer that is
// heard but has never acknowledged anything proves nothing about this
// member's reach. One replayed group message makes such a "peer" up for
// DeadInterval (35 s); counting it would let that message stop every
// registration (the hostile-input test does exactly that). An acking peer
// that falls silent is the case of issue 7: this member is more likely cut
// off than alone, and its acceptances would die with it.
func (r *Registrar) unacked(v *Verdict) {
	q := r.hold
	now := r.now
	if r.cfg.Group.RequireReplication || r.m.AckingPeers() > 0 {
		r.refuse(now, v, &q.DeniedNoAck, "registration answered 130: no peer acknowledged its binding update in time; the node retries")
		return
	}
	r.acceptAlone()
}

// acceptAlone counts (and, at most once a second, logs) an acceptance no
// peer can acknowledge because none is up.
func (r *Registrar) acceptAlone() {
	q := r.hold
	q.AcceptedUnreplicated++
	if now := r.now; now-q.lastAlone >= int64(logEvery) {
		q.lastAlone = now
		r.log.Warn("registration accepted with no peer acknowledging: this member serves alone, and loses these bindings if it dies before a peer returns (group.require_replication refuses instead)",
			"accepted_unreplicated", q.AcceptedUnreplicated)
	}
}

// refuse turns v into 130, counts it in n and says why at most once a
// second (the denials share one rate limit).
func (r *Registrar) refuse(now int64, v *Verdict, n *uint64, why string) {
	v.Deny(mip.CodeInsufficientResources)
	*n++
	if q := r.hold; now-q.lastDeny >= int64(logEvery) {
		q.lastDeny = now
		r.log.Warn(why, "denied_total", q.DeniedNoAck+q.DeniedUnreplicated+q.DeniedFull, "acking_peers", r.m.AckingPeers())
	}
}

// gateReply decides what happens now to the verdict accepting a table
// change (or a retransmission of one, ch.Dup) in a group with
// ack_before_reply: true: send it now (it may have been turned into a
// denial); false: it is held until a peer acknowledges, or not answered.
func (r *Registrar) gateReply(now int64, ch *Change, v *Verdict, to netip.AddrPort, ifindex int) bool {
	q, m := r.hold, r.m
	home, key, id := ch.Entry.Home, ch.Entry.Key, ch.Entry.ID
	if ch.Dup && q.holding(home, key, id) {
		return false // the held reply answers the retransmission too: one answer
	}
	if m.UpPeers() == 0 {
		if !r.cfg.Group.RequireReplication {
			r.acceptAlone()
			return true
		}
		r.refuse(now, v, &q.DeniedUnreplicated, "registration answered 130: no peer is up to replicate it (group.require_replication)")
		return true
	}
	if m.AwaitedPeers() == 0 && !r.cfg.Group.RequireReplication {
		// Peers are up but none is expected to acknowledge: none proved
		// its session (known from a Home Agent List only), or every one
		// let an update run out of retries since. Holding would delay the
		// reply by 2 × ack_timeout and then send it anyway (unacked: no
		// acking peer, so it is accepted alone). Send it now, counted and
		// logged as unreplicated; the update still goes out and is
		// retransmitted. A peer that proved its session and has not
		// acknowledged yet (it just started or restarted) is awaited: the
		// reply waits for its ack.
		r.acceptAlone()
		return true
	}
	if ch.Dup {
		// The first update may never have been acknowledged (its reply was
		// then a denial): announce the binding again, and let an ack decide.
		r.core.acts = m.ReannounceKey(now, home, key, r.core.acts[:0])
		r.groupActs()
	}
	if q.hold(now, home, key, id, v, to, ifindex) {
		return false
	}
	if !r.cfg.Group.RequireReplication {
		return true // counted in Overflow: availability first, as before the policy
	}
	v.Deny(mip.CodeInsufficientResources)
	q.DeniedFull++
	return true
}
