package agent

import (
	"testing"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/hasync"
)

// Claim 1: the group hears of a registration no later than the node. In
// the registrar's answer to a batch, the binding update comes before the
// reply (the loop performs actions in order).
func TestUpdateBeforeReply(t *testing.T) {
	h := newReplHarness(t, false)
	// The configured peer is not up: the reply is not held, and the
	// update still goes to the peer's address.
	h.send(h.request(false))
	update, reply := -1, -1
	for i, act := range h.acts {
		switch {
		case act.Kind == ActGroup && (act.Group.Kind == hasync.ActMulticast || act.Group.Kind == hasync.ActUnicast) && update < 0:
			update = i
		case act.Kind == ActSend && reply < 0:
			reply = i
		}
	}
	if update < 0 || reply < 0 || update > reply {
		t.Fatalf("update at %d, reply at %d in %d actions: want the update first", update, reply, len(h.acts))
	}
}

// The operator's clear binding is a de-registration versioned just above
// the binding it removes, which the group hears of (a local delete would
// come back with the next repair); clearing nothing says so.
func TestClearBindingReachesTheGroup(t *testing.T) {
	h := newReplHarness(t, false)
	h.peerAcking()
	home := h.a.cfg.Nodes[0].HomeAddress
	h.handle(Event{Kind: EvClear, Home: home})
	var cleared *Action
	for i := range h.acts {
		if h.acts[i].Kind == ActCleared {
			cleared = &h.acts[i]
		}
	}
	if cleared == nil || cleared.Err != nil || cleared.Change.Kind != Cleared {
		t.Fatalf("clear: %+v", cleared)
	}
	if h.toPeer(true) == 0 {
		t.Fatal("the group did not hear of the clear")
	}
	if e := h.peerTab.Get(binding.AddrU32(home)); e == nil || !e.Tombstone() || e.ID != h.id+1 {
		t.Fatalf("peer after the clear: %+v, want a tombstone at id %#x", e, h.id+1)
	}
	h.handle(Event{Kind: EvClear, Home: home})
	for _, act := range h.acts {
		if act.Kind == ActCleared && act.Err == nil {
			t.Fatal("cleared a binding that is gone")
		}
	}
}
