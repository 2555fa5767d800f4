package agent

import "github.com/hagent/hagent/ha/internal/udpio"

// newRegistrar builds the registration path on the Core and the group's
// machine (newGroup first).
func (a *Agent) newRegistrar() {
	a.reg = newRegistrar(a.core, a.grp.m, a.cfg, a.log)
	a.reg.elected = a.grp.elector != nil
	a.reg.periodicActive = a.heartbeatMode()
	a.hold = a.reg.hold
	a.acts = make([]Action, 0, 2*batchSize)
}

// perform does what the registrar asked for, in order (owner goroutine):
// group messages, table changes the kernel follows, replies. Programming
// the kernel answers the registrar at once (EvKernel), which then releases
// the batch's replies.
func (a *Agent) perform(now int64, acts []Action) {
	program, initialized := false, false
	for i := range acts {
		switch act := &acts[i]; act.Kind {
		case ActSend:
			a.send(act.Pkts)
		case ActGroup:
			initialized = a.groupAction(now, &act.Group) || initialized
		case ActChange:
			a.changed(act.Change)
		case ActProgram:
			program = true
		}
	}
	a.acts = acts[:0]
	if program {
		refused := a.applyDataplane()
		a.perform(now, a.reg.Handle(now, Event{Kind: EvKernel, Refused: refused, RefusedNets: a.dpl.refusedNets()}, a.acts[:0]))
	}
	if initialized {
		a.initialized()
	}
}

// send writes replies with sendmmsg. On an error WriteBatch stops at the
// packet that failed: count it, skip it, and send the rest (one unroutable
// node must not silence a batch).
func (a *Agent) send(ps []udpio.Packet) {
	for off := 0; off < len(ps); {
		sent, err := a.conn.WriteBatch(ps[off:])
		off += sent
		if err != nil {
			a.core.Stats.SendErrors++
			off++
		} else if sent == 0 {
			a.core.Stats.SendErrors += uint64(len(ps) - off)
			break
		}
	}
}
