package agent

import (
	"errors"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/datapath"
	"github.com/hagent/hagent/ha/mip"
)

// settle takes the kernel's answer to the batch's programming (EvKernel)
// and undoes what it refused (issue 5): the binding is withdrawn through
// the normal path (the group hears of it), and its node's verdict becomes
// a denial: 139 (encapsulation unavailable) when the kernel lacks the
// node's encapsulation, else 130 (insufficient resources; the node
// retries). A held reply (ack_before_reply) leaves the hold queue at once,
// denied, since no ack can make it true. Then the batch's replies are
// sealed and sent. Allocation-free apart from the rate-limited log line.
func (r *Registrar) settle(refused []refusal) {
	var vs []Verdict
	if b := r.pending; b != nil {
		vs = b.v[:r.npend]
	}
	for i := range refused {
		rf := &refused[i]
		if rf.later {
			continue // a later request of the node in this batch decides
		}
		home, careOf := binding.AddrU32(rf.b.Home), binding.AddrU32(rf.b.CareOf)
		ch, ok := r.core.Withdraw(r.now, home, careOf)
		if !ok {
			continue
		}
		r.change(ch)
		if len(r.core.acts) > 0 {
			r.groupActs() // the peers hear of the withdrawal too
		}
		code := mip.CodeInsufficientResources
		if errors.Is(rf.err, datapath.ErrUnsupported) {
			code = mip.CodeEncapUnavailable
		}
		r.denyVerdict(vs, home, ch.Entry.ID, code)
		if r.now-r.lastRef >= int64(logEvery) {
			r.lastRef = r.now
			r.log.Warn("kernel refused a new binding: withdrawn, the node answered with a denial",
				"home", rf.b.Home, "care_of", rf.b.CareOf, "code", uint8(code), "withdrawn_total", r.core.Stats.Withdrawn, "err", rf.err)
		}
	}
	r.sendBatch()
}

// denyVerdict turns the batch's accepting verdict for home (the last one: a
// node's later request in the same batch answers last) into code; when the
// reply is held instead, it leaves the hold queue now, denied.
func (r *Registrar) denyVerdict(vs []Verdict, home uint32, id uint64, code mip.Code) {
	for j := len(vs) - 1; j >= 0; j-- {
		v := &vs[j]
		if binding.AddrU32(v.HomeAddr) != home {
			continue
		}
		if v.Code.Accepted() { // else already a denial (require_replication with nobody up)
			v.Deny(code)
		}
		return
	}
	if q := r.hold; q != nil && q.holding(home, id) {
		h := q.take(home)
		h.v.Deny(code)
		r.sendOne(&h.v, h.to, h.ifindex)
	}
}

// reload applies a new configuration (EvReload): the Core's reload, then
// the revocations it found, each sent to the group and the kernel like a
// de-registration, each named in an ActRevoked; ActReloaded ends it.
func (r *Registrar) reload(cfg *config.Config) {
	if err := r.core.Reload(cfg); err != nil {
		r.out = append(r.out, Action{Kind: ActReloaded, Err: err})
		return
	}
	r.cfg = cfg
	r.core.Revoke(r.now, func(ch Change, node, why string) {
		r.change(ch)
		if r.hold != nil {
			// A reply still held for its acknowledgement must not say
			// "accepted" any more: a denial if the node still has its key
			// here, else nothing (the node retries and hears 129).
			if h := r.hold.take(ch.Entry.Home); h != nil {
				h.v.Deny(mip.CodeAdminProhibited)
				r.sendOne(&h.v, h.to, h.ifindex)
			}
		}
		if len(r.core.acts) > 0 {
			r.groupActs()
		}
		r.out = append(r.out, Action{Kind: ActRevoked, Change: ch, Node: node, Why: why})
	})
	r.out = append(r.out, Action{Kind: ActReloaded})
}
