package agent

import (
	"net/netip"
	"testing"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/mip"
)

// Two routers of a fleet register at a group member with
// ack_before_reply, in one batch and with the same Identification: each
// reply waits for the acknowledgement of its own router's update (not the
// other's), the peer stores two bindings named by NAI, and a
// de-registration of one reaches the peer as that router's only.
func TestFleetReplicatedWithAckBeforeReply(t *testing.T) {
	for _, kernel := range []bool{false, true} {
		t.Run(map[bool]string{false: "inline", true: "kernel"}[kernel], func(t *testing.T) {
			replWithKernel = kernel
			defer func() { replWithKernel = false }()
			fleetGroupRun(t)
		})
	}
}

func fleetGroupRun(t *testing.T) {
	shared := netip.MustParseAddr("127.0.0.200")
	h := newReplHarnessWith(t, false, func(cfg *config.Config) {
		f := fleetConfig(shared)
		cfg.Agent.SharedHomeAddresses = f.Agent.SharedHomeAddresses
		cfg.Nodes = append(cfg.Nodes, f.Nodes[len(f.Nodes)-2:]...)
	})
	h.peerAcking()
	req := func(nai string, id uint64, lt uint16) []byte {
		r := fleetReq(nai, id, lt, coa)
		r.HomeAddr, r.HomeAgent = shared, h.a.cfg.Agent.VirtualAddress
		return r.bytes(t)
	}
	acked0 := h.a.hold.Acked // peerAcking's own registration is held and acked too
	h.id++
	h.batch(req(naiA, h.id, 300), req(naiB, h.id, 300))
	if len(h.sent) != 0 {
		t.Fatalf("%d replies before any acknowledgement", len(h.sent))
	}
	h.toPeer(true)
	if len(h.sent) != 2 {
		t.Fatalf("%d replies after the acknowledgements, want 2", len(h.sent))
	}
	for _, b := range h.sent {
		if r := verifyReply(t, b, keyFleet); r.Code != mip.CodeAccepted {
			t.Fatalf("code %d", r.Code)
		}
	}
	h.sent = h.sent[:0]
	if q := h.a.hold; q.Superseded != 0 || q.Acked-acked0 != 2 {
		t.Fatalf("hold: superseded %d acked %d (+%d): one router's reply released by the other's acknowledgement", q.Superseded, q.Acked-acked0, acked0)
	}
	home := binding.AddrU32(shared)
	kA, kB := binding.FleetKey([]byte(naiA)), binding.FleetKey([]byte(naiB))
	for _, k := range []uint64{kA, kB} {
		if e := h.peerTab.GetKey(home, k); e == nil || e.Tombstone() || e.ID != h.id {
			t.Fatalf("peer's copy of %x: %+v", k, e)
		}
	}
	if h.peerTab.Get(home) != nil {
		t.Fatal("the peer holds a binding of the shared address named by no NAI")
	}
	// A de-registers.
	h.id++
	h.batch(req(naiA, h.id, 0))
	h.toPeer(true)
	if len(h.sent) != 1 {
		t.Fatalf("%d replies to the de-registration", len(h.sent))
	}
	h.sent = h.sent[:0]
	if e := h.peerTab.GetKey(home, kA); e == nil || !e.Tombstone() {
		t.Fatalf("peer's A after de-registration: %+v", e)
	}
	if e := h.peerTab.GetKey(home, kB); e == nil || e.Tombstone() {
		t.Fatalf("peer's B after A's de-registration: %+v", e)
	}
}
