package agent

import (
	"net/netip"
	"testing"

	"github.com/hagent/hagent/ha/mip"
)

// Staged, a decision that would read a staged write stops short: here two
// NAI nodes of one pool on first contact in one batch. The second must not
// be given the address the first one's staged write takes; once that write
// is made, it is decided again and gets another.
func TestStagedPoolAssignmentWaitsForTheWrite(t *testing.T) {
	cfg := testConfig(8)
	second := cfg.Nodes[1] // "nai", pool 192.0.2.128/28
	second.Name, second.NAI, second.Key, second.SPI = "nai2", "mn3@example.net", []byte("nai2-key-0123456"), 301
	cfg.Nodes = append(cfg.Nodes, second)
	c, err := NewCore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	first := rq{Request: mip.Request{Lifetime: 300, HomeAgent: haVIP, CareOf: coa, ID: ts(0), NAI: []byte("mn2@example.net"), HomeAddr: netip.IPv4Unspecified()}, spi: 300, key: keyNAI}
	other := rq{Request: mip.Request{Lifetime: 300, HomeAgent: haVIP, CareOf: coa, ID: ts(0), NAI: []byte("mn3@example.net"), HomeAddr: netip.IPv4Unspecified()}, spi: 301, key: second.Key}
	var in1, in2 intent
	var v1, v2 Verdict
	c.Stage(&in1)
	ch1 := c.Handle(0, wall0, mnSrc, haVIP, first.bytes(t), &v1)
	if c.Suspended() || !v1.Answer || v1.Code != mip.CodeAccepted || in1.kind != Registered {
		t.Fatalf("first: suspended %v verdict %+v intent %v", c.Suspended(), v1, in1.kind)
	}
	if c.Table().Get(in1.ent.Home) != nil {
		t.Fatal("a staged write was made")
	}
	c.Stage(&in2)
	c.Handle(0, wall0, mnSrc, haVIP, other.bytes(t), &v2)
	if !c.Suspended() || v2.Answer {
		t.Fatalf("second decided past the first's staged write: %+v", v2)
	}
	c.Stage(nil)
	if !c.commit(&in1, &in1.ctx, &v1, &ch1) {
		t.Fatal("commit refused")
	}
	c.Unstage()
	c.Stage(&in2)
	c.Handle(0, wall0, mnSrc, haVIP, other.bytes(t), &v2)
	c.Stage(nil)
	if c.Suspended() || !v2.Answer || v2.HomeAddr == v1.HomeAddr {
		t.Fatalf("second after the write: suspended %v, home %s (first has %s)", c.Suspended(), v2.HomeAddr, v1.HomeAddr)
	}
	if c.Stats.Requests != 2 {
		t.Fatalf("requests %d: the suspended one was counted twice", c.Stats.Requests)
	}
}
