package agent

import (
	"net/netip"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/hasync"
)

// mnSrc4 is where the scripted mobile nodes send from.
var mnSrc4 = netip.MustParseAddrPort("127.0.0.1:49152")

// scripted is the owner loop of a test: it gives an agent's registrar
// events at a fake time and performs what it asks for the way the loop
// does, except that replies and group messages are collected instead of
// sent. No socket, no sleep.
type scripted struct {
	t       *testing.T
	a       *Agent // built by New; no socket
	r       *Registrar
	now     int64 // the fake monotonic clock, nanoseconds
	acts    []Action
	toPeerQ [][]byte        // group messages the member sent, not yet delivered
	sent    [][]byte        // replies the member sent, not yet read
	events  []hasync.Action // the group actions the loop performed (peer down, alive, initialized)
	discard bool            // collect nothing (the allocation tests)
}

// handle gives the registrar one event at the harness's time and performs
// what it asks for.
func (h *scripted) handle(ev Event) {
	h.acts = h.r.Handle(h.now, ev, h.acts[:0])
	program := false
	for i := range h.acts {
		switch act := &h.acts[i]; act.Kind {
		case ActSend:
			if h.discard {
				continue
			}
			for _, p := range act.Pkts {
				if p.Src != mnSrc4 {
					h.t.Fatalf("reply to %s, want %s", p.Src, mnSrc4)
				}
				h.sent = append(h.sent, append([]byte(nil), p.Buf[:p.N]...))
			}
		case ActGroup:
			switch act.Group.Kind {
			case hasync.ActMulticast, hasync.ActUnicast:
				if !h.discard {
					h.toPeerQ = append(h.toPeerQ, append([]byte(nil), act.Group.Pkt...))
				}
			default: // peer down or alive, initialized: as the loop does
				if !h.discard {
					h.events = append(h.events, act.Group)
				}
				h.a.groupAction(h.now, &act.Group)
			}
		case ActChange:
			h.a.changed(act.Change) // the kernel follows (a fake one, when the test gave one)
		case ActProgram:
			if h.a.dpl == nil {
				h.t.Fatal("no kernel here, yet the registrar asked to program it")
			}
			program = true
		}
	}
	if program {
		refused := h.a.applyDataplane()
		h.handle(Event{Kind: EvKernel, Refused: refused, RefusedNets: h.a.dpl.refusedNets()})
	}
}

// batch hands the datagrams to the registrar as one batch from mnSrc4.
func (h *scripted) batch(pkts ...[]byte) {
	b := <-h.a.free
	for i, pkt := range pkts {
		p := &b.in[i]
		p.N = copy(p.Buf, pkt)
		p.Src, p.Dst = mnSrc4, h.a.cfg.Agent.VirtualAddress
		p.Trunc, p.Ifindex = false, 0
	}
	b.n = len(pkts)
	h.handle(Event{Kind: EvBatch, Batch: b, Wall: time.Now()})
	b.n = 0
	h.a.free <- b
}

// reload applies cfg as SIGHUP would; the error of a refused reload.
func (h *scripted) reload(cfg *config.Config) error {
	h.handle(Event{Kind: EvReload, Cfg: cfg})
	for _, act := range h.acts {
		if act.Kind == ActReloaded {
			if act.Err == nil {
				h.a.cfg = cfg
			}
			return act.Err
		}
	}
	h.t.Fatal("the reload was not answered")
	return nil
}
