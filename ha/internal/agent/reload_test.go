package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/mip"
)

func TestReloadKeepsBindingsAndReplayState(t *testing.T) {
	c := newCore(t, 4)
	if r := handle(t, c, 0, mnSrc, haVIP, req1(ts(0)).bytes(t)); r.rep.Code != 0 {
		t.Fatalf("register: %d", r.rep.Code)
	}
	// New key for mn1, node "nort" removed, a new node added.
	cfg := testConfig(4)
	newKey := []byte("a-brand-new-key!")
	cfg.Nodes[0].Key = newKey
	cfg.Nodes = append(cfg.Nodes[:4], cfg.Nodes[4+1:]...)
	cfg.Agent.MaxLifetime = 100
	if err := c.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	e := c.table.Get(binding.AddrU32(mn1))
	if e == nil || c.NodeName(e.Node) != "mn1" {
		t.Fatalf("binding lost or pointing at the wrong node after reload: %+v", e)
	}
	// The old key no longer authenticates; the new one does, and the
	// replay state carried over (an old identification is still refused).
	if r := handle(t, c, 0, mnSrc, haVIP, req1(ts(time.Second)).bytes(t)); r.rep.Code != mip.CodeMNAuthFailed {
		t.Fatalf("old key after reload: code %d, want 131", r.rep.Code)
	}
	stale := req1(ts(0))
	stale.key = newKey
	if r := handle(t, c, 0, mnSrc, haVIP, stale.bytes(t)); r.rep.Code != mip.CodeIDMismatch && r.rep.Code != mip.CodeAccepted {
		t.Fatalf("replayed identification after reload: code %d", r.rep.Code)
	} else if r.rep.Code == mip.CodeAccepted && r.ch.Kind != NoChange {
		t.Fatalf("replayed identification changed the table after reload: %s", r.ch.Kind)
	}
	fresh := req1(ts(2 * time.Second))
	fresh.key = newKey
	fresh.Lifetime = 600
	if r := handle(t, c, 0, mnSrc, haVIP, fresh.bytes(t)); r.rep.Code != 0 || r.rep.Lifetime != 100 {
		t.Fatalf("new key after reload: code %d lifetime %d; want 0 and the new cap 100", r.rep.Code, r.rep.Lifetime)
	}
}

func TestReloadRefusesRestartOnlyChanges(t *testing.T) {
	c := newCore(t, 4)
	cfg := testConfig(8)
	cfg.Nodes[0].Key = []byte("would-be-new-key")
	err := c.Reload(cfg)
	if err == nil || !strings.Contains(err.Error(), "agent.capacity") {
		t.Fatalf("capacity change: %v, want a refusal naming agent.capacity", err)
	}
	// Nothing was applied: the old key still works.
	if r := handle(t, c, 0, mnSrc, haVIP, req1(ts(0)).bytes(t)); r.rep.Code != 0 {
		t.Fatalf("after a refused reload the old key fails: %d", r.rep.Code)
	}
}

func TestGREOfferedOnlyWhenTheKernelHasIt(t *testing.T) {
	cfg := testConfig(4)
	cfg.Agent.Encapsulations = []string{"ipip", "gre"}
	c, err := NewCore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetKernelGRE(false)
	g := req1(ts(0))
	g.Flags = mip.FlagG
	if r := handle(t, c, 0, mnSrc, haVIP, g.bytes(t)); r.rep.Code != mip.CodeEncapUnavailable {
		t.Fatalf("G without kernel GRE: code %d, want 139", r.rep.Code)
	}
	cfg2 := testConfig(4)
	cfg2.Agent.Encapsulations = []string{"ipip", "gre"}
	if err := c.Reload(cfg2); err != nil {
		t.Fatal(err)
	}
	g.ID = ts(time.Second)
	if r := handle(t, c, 0, mnSrc, haVIP, g.bytes(t)); r.rep.Code != mip.CodeEncapUnavailable {
		t.Fatalf("G without kernel GRE after a reload: code %d, want 139", r.rep.Code)
	}
	c.SetKernelGRE(true)
	g.ID = ts(2 * time.Second)
	if r := handle(t, c, 0, mnSrc, haVIP, g.bytes(t)); r.rep.Code != mip.CodeAccepted {
		t.Fatalf("G with kernel GRE: code %d, want 0", r.rep.Code)
	}
}
