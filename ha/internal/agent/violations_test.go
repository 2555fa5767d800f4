package agent

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/mip"
)

// Every authentication failure is recorded with its source, home address,
// SPI and reason, newest first, in a ring that keeps the last
// violationRing; recording allocates nothing.
func TestViolationsRecorded(t *testing.T) {
	c := newCore(t, 16)
	badKey := req1(ts(0))
	badKey.key = []byte("wrong-key-000000")
	badSPI := req1(ts(0))
	badSPI.spi = 999
	noAuth := req1(ts(0))
	noAuth.key = nil
	noSA := req1(ts(0))
	noSA.HomeAddr = mn1.Next().Next().Next().Next().Next().Next().Next().Next().Next() // 192.0.2.19: nobody's
	for _, r := range []rq{badKey, badSPI, noAuth, noSA} {
		if res := handle(t, c, 1, mnSrc, haVIP, r.bytes(t)); res == nil {
			t.Fatal("no reply")
		}
	}
	v := c.viol.show(0)
	if v.Total != 4 || len(v.Rows) != 4 {
		t.Fatalf("recorded %d (%d rows), want 4: %+v", v.Total, len(v.Rows), v.Rows)
	}
	want := []string{"no security association", "no MN-HA authentication extension", "unknown SPI", "bad authenticator"}
	for i, w := range want {
		x := v.Rows[i]
		if x.Reason != w || x.Source != mnSrc.String() || !strings.HasPrefix(x.Time, "2026-11-23T12:00:00") {
			t.Errorf("row %d = %+v, want reason %q from %s", i, x, w, mnSrc)
		}
	}
	if v.Rows[2].SPI != 999 || v.Rows[3].Home != mn1.String() {
		t.Errorf("SPI/home not kept: %+v", v.Rows)
	}
	pkt := badKey.bytes(t)
	out := make([]byte, 0, ReplyBufLen)
	if a := testing.AllocsPerRun(200, func() { sealed(c, 1, wall0, mnSrc, haVIP, pkt, out) }); a != 0 {
		t.Fatalf("an authentication failure allocates %v", a)
	}
	v = c.viol.show(0)
	if v.Total < violationRing+4 || len(v.Rows) != violationRing {
		t.Fatalf("ring: total %d, %d rows; want every one counted and the last %d kept", v.Total, len(v.Rows), violationRing)
	}
	if got := c.viol.show(2); len(got.Rows) != 2 {
		t.Fatalf("limit 2: %d rows", len(got.Rows))
	}
}

// The member that accepts a registration keeps its source address, port
// and NAI beside the binding, without allocating (the registration path's
// AllocsPerRun covers it too).
func TestBindingKeepsItsSource(t *testing.T) {
	c := newCore(t, 16)
	r := rq{Request: mip.Request{Lifetime: 300, HomeAgent: haVIP, CareOf: coa, ID: ts(0), NAI: []byte("mn2@example.net"),
		HomeAddr: netip.IPv4Unspecified()}, spi: 300, key: keyNAI}
	res := handle(t, c, 1, mnSrc, haVIP, r.bytes(t))
	if res == nil || res.rep.Code != mip.CodeAccepted {
		t.Fatalf("not accepted: %+v", res)
	}
	e := c.table.Get(binding.AddrU32(res.rep.HomeAddr))
	s := c.table.SourceOf(e)
	if s == nil || binding.U32Addr(s.Addr) != mnSrc.Addr() || s.Port != mnSrc.Port() || string(s.NAI()) != "mn2@example.net" {
		t.Fatalf("source %+v of %+v", s, e)
	}
}

// show redundancy lists the peer with what an operator asks of it, and
// every counter under a unique dotted key; show bindings ADDR asks for the
// detailed layout and the summary counts the whole table.
func TestConsoleAnswersShape(t *testing.T) {
	h := newReplHarness(t, false)
	h.peerAcking()
	h.send(h.request(false))
	h.toPeer(true)
	h.wantReply(mip.CodeAccepted)
	r := h.a.showRedundancy()
	if len(r.Peers) != 1 || !strings.HasPrefix(r.Peers[0].State, "up") || !r.Peers[0].Acking || r.Replication == nil || r.Replication.PeersAcking != 1 {
		t.Fatalf("peers %+v, replication %+v", r.Peers, r.Replication)
	}
	seen := map[string]bool{}
	for _, c := range r.Flat() {
		if seen[c.Key] || strings.Count(c.Key, ".") != 1 || strings.ContainsAny(c.Key, " -") {
			t.Errorf("counter key %q repeated or not group.snake_case", c.Key)
		}
		seen[c.Key] = true
	}
	home := h.a.cfg.Nodes[0].HomeAddress.String()
	b := h.a.showBindings(console.Request{Args: []string{home}})
	if !b.Detail || len(b.Rows) != 1 || b.Rows[0].Source == "" || b.Rows[0].Tunnel != "ipip" || b.IPIP != 1 || b.Live != 1 {
		t.Fatalf("show bindings %s: %+v", home, b)
	}
}
