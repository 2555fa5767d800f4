package agent

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/mip"
)

// verifyReply decodes a reply and checks its MN-HA authenticator with key.
func verifyReply(t *testing.T, b, key []byte) mip.Reply {
	t.Helper()
	var r mip.Reply
	if err := r.UnmarshalBinary(b); err != nil {
		t.Fatalf("reply does not parse: %v (% x)", err, b)
	}
	var scratch [64]byte
	if !r.MHAuth.Present || !mip.Verify(b, r.MHAuth, mip.NewHMACMD5(key), &scratch) {
		t.Fatalf("reply (code %d) does not authenticate with the node's key", r.Code)
	}
	return r
}

// decided runs the decision on pkt and returns its verdict, unsealed.
func decided(t *testing.T, c *Core, pkt []byte) Verdict {
	t.Helper()
	var v Verdict
	c.Handle(0, wall0, mnSrc, haVIP, pkt, &v)
	if !v.Answer {
		t.Fatal("no verdict")
	}
	return v
}

func seal(t *testing.T, c *Core, v *Verdict) []byte {
	t.Helper()
	b, err := c.Seal(v, make([]byte, 0, ReplyBufLen))
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return b
}

// A verdict turned into a denial after the decision (the hold policy, the
// kernel) is sealed like any other: signed once, with the node's key,
// lifetime 0, everything else as decided, and counted under the code sent.
func TestDeniedVerdictSeals(t *testing.T) {
	c := newCore(t, 8)
	// A fixed home address, and a NAI node given an address from its pool
	// (the reply carries the NAI extension before the authenticator).
	nai := rq{Request: mip.Request{Lifetime: 300, HomeAgent: haVIP, CareOf: coa, ID: ts(0), NAI: []byte("mn2@example.net"), HomeAddr: netip.IPv4Unspecified()}, spi: 300, key: keyNAI}
	for _, tc := range []struct {
		name string
		req  rq
		key  []byte
	}{{"fixed home", req1(ts(0)), key1}, {"nai pool", nai, keyNAI}} {
		t.Run(tc.name, func(t *testing.T) {
			v := decided(t, c, tc.req.bytes(t))
			acc := verifyReply(t, seal(t, c, &v), tc.key)
			if acc.Code != mip.CodeAccepted || acc.Lifetime == 0 {
				t.Fatalf("setup: code %d lifetime %d", acc.Code, acc.Lifetime)
			}
			acc0, den0 := c.Stats.Codes[mip.CodeAccepted], c.Stats.Codes[mip.CodeInsufficientResources]
			v.Deny(mip.CodeInsufficientResources)
			d := verifyReply(t, seal(t, c, &v), tc.key)
			if d.Code != mip.CodeInsufficientResources || d.Lifetime != 0 || d.ID != acc.ID ||
				d.HomeAddr != acc.HomeAddr || d.HomeAgent != acc.HomeAgent || !bytes.Equal(d.NAI, acc.NAI) {
				t.Fatalf("denial %+v, from acceptance %+v", d, acc)
			}
			if c.Stats.Codes[mip.CodeAccepted] != acc0 || c.Stats.Codes[mip.CodeInsufficientResources] != den0+1 {
				t.Errorf("reply code counters: 0: %d→%d, 130: %d→%d, want the denial counted once", acc0, c.Stats.Codes[0], den0, c.Stats.Codes[130])
			}
		})
	}
}

// A verdict whose node's key a reload replaced (or whose node it removed)
// is not sealed: the node could not check a reply signed with the new key,
// and the old one is gone. A reload that keeps the node's key keeps its
// verdicts sealable, with that key, wherever the node moved in the list.
func TestSealRefusesAReplacedKey(t *testing.T) {
	c := newCore(t, 8)
	v1 := decided(t, c, req1(ts(0)).bytes(t))
	nai := rq{Request: mip.Request{Lifetime: 300, HomeAgent: haVIP, CareOf: coa, ID: ts(0), NAI: []byte("mn2@example.net"), HomeAddr: netip.IPv4Unspecified()}, spi: 300, key: keyNAI}
	v2 := decided(t, c, nai.bytes(t))
	v2.Deny(mip.CodeInsufficientResources)

	cfg := testConfig(8)
	cfg.Nodes[0].Key = []byte("another-key-0000")
	cfg.Nodes[0], cfg.Nodes[1] = cfg.Nodes[1], cfg.Nodes[0] // "nai" moves to index 0, its key kept
	if err := c.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	replies := c.Stats.Replies
	if b, err := c.Seal(&v1, make([]byte, 0, ReplyBufLen)); err != errKeyReplaced || len(b) != 0 {
		t.Fatalf("Seal after the key changed: %d bytes, %v; want nothing, errKeyReplaced", len(b), err)
	}
	if c.Stats.Replies != replies {
		t.Error("a reply that was not sealed was counted as a reply")
	}
	if d := verifyReply(t, seal(t, c, &v2), keyNAI); d.Code != mip.CodeInsufficientResources {
		t.Fatalf("the kept key's verdict: code %d", d.Code)
	}
	// The same SPI with another key is another key too; a removed node has none.
	cfg2 := testConfig(8)
	cfg2.Nodes = cfg2.Nodes[2:]
	if err := c.Reload(cfg2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Seal(&v2, make([]byte, 0, ReplyBufLen)); err != errKeyReplaced {
		t.Fatalf("Seal for a removed node: %v, want errKeyReplaced", err)
	}
}

func TestSealAllocatesNothing(t *testing.T) {
	c := newCore(t, 8)
	v := decided(t, c, req1(ts(0)).bytes(t))
	out := make([]byte, 0, ReplyBufLen)
	allocs := testing.AllocsPerRun(100, func() {
		v.Deny(mip.CodeInsufficientResources)
		if _, err := c.Seal(&v, out); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per Seal", allocs)
	}
}

// A retransmission of an accepted request is answered again and says so
// (Dup), so that the agent can demand the same proof of replication.
func TestDuplicateIsMarked(t *testing.T) {
	c := newCore(t, 8)
	req := req1(ts(0)).bytes(t)
	if r := handle(t, c, 0, mnSrc, haVIP, req); r.ch.Dup || r.ch.Kind != Registered {
		t.Fatalf("first: %+v", r.ch)
	}
	r := handle(t, c, int64(time.Second), mnSrc, haVIP, req)
	if r.rep.Code != mip.CodeAccepted || r.ch.Kind != NoChange || !r.ch.Dup ||
		r.ch.Entry.Home != 0xc000020a || r.ch.Entry.ID != ts(0) {
		t.Fatalf("retransmission: code %d change %+v", r.rep.Code, r.ch)
	}
}
