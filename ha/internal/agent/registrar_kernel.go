package agent

import (
	"errors"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/datapath"
	"github.com/hagent/hagent/ha/mip"
)

// settle takes the kernel's answer (EvKernel) to the staged writes of the
// batch: a binding the kernel refused is not written, so the group never
// hears of it, and its node's verdict becomes a denial: 139 (encapsulation
// unavailable) when the kernel lacks the node's encapsulation, else 130
// (insufficient resources; the node retries). What the refused add may
// have left in the kernel is undone by the next flush (the binding the
// table holds, or none). The other writes are made and replicated, and
// meet the hold gate. Then the batch's next datagrams are decided, or its
// replies are sealed and sent. Allocation-free apart from the rate-limited
// log line.
func (r *Registrar) settle(refused []refusal) {
	b, c := r.pending, r.core
	if b == nil {
		return
	}
	for j := r.committed; j < r.npend; j++ {
		v, in, ch := &b.v[j], &b.it[j], &b.ch[j]
		if in.kind != NoChange {
			if rf := refusalOf(refused, in.ent.Home); rf != nil && in.moved {
				code := mip.CodeInsufficientResources
				if errors.Is(rf.err, datapath.ErrUnsupported) {
					code = mip.CodeEncapUnavailable
				}
				c.refused(in, v, code)
				r.restore(in.ent.Home, &in.ent)
				r.logRefusal(rf, code)
				continue
			}
			dropRefusedNets(r.refusedNets, in, v)
			if !c.commit(in, &in.ctx, v, ch) {
				r.restore(in.ent.Home, &in.ent)
				continue
			}
			if len(c.acts) > 0 {
				r.groupActs() // replicated once the kernel holds it
			}
		}
		if r.hold != nil && (ch.Kind != NoChange || ch.Dup) && v.Code.Accepted() {
			o := &b.out[j]
			if !r.gateReply(r.now, ch, v, o.Src, o.Ifindex) {
				v.Answer = false // held (a copy), or not answered
			}
		}
	}
	r.committed = r.npend
	c.Unstage()
	if r.cursor < b.n {
		r.decideStaged() // the rest of the batch, after the writes it depends on
		return
	}
	r.sendBatch()
}

// refusalOf is the kernel's refusal of the add for home, if any.
func refusalOf(refused []refusal, home uint32) *refusal {
	for i := range refused {
		if rf := &refused[i]; !rf.later && binding.AddrU32(rf.b.Home) == home {
			return rf
		}
	}
	return nil
}

// restore has the kernel follow the table again for home after an add it
// was asked for was not written: the binding the table holds, or none.
func (r *Registrar) restore(home uint32, asked *binding.Entry) {
	if e := r.core.table.Get(home); e != nil && !e.Tombstone() {
		ch := Change{Kind: Renewed, Entry: *e, Moved: true}
		ch.Gone.gone(asked, e) // networks the unwritten add routed
		r.change(ch)
		return
	}
	ch := Change{Kind: Withdrawn, Entry: binding.Entry{Home: home}}
	ch.Gone.gone(asked, &ch.Entry)
	r.change(ch)
}

func (r *Registrar) logRefusal(rf *refusal, code mip.Code) {
	if r.now-r.lastRef >= int64(logEvery) {
		r.lastRef = r.now
		r.log.Warn("kernel refused a new binding: not written, the node answered with a denial",
			"home", rf.b.Home, "care_of", rf.b.CareOf, "code", uint8(code), "refused_total", r.core.Stats.Withdrawn, "err", rf.err)
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
			if h := r.hold.take(ch.Entry.Home, ch.Entry.Key); h != nil {
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
