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

func TestDenyRewritesAnAcceptance(t *testing.T) {
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
			r := handle(t, c, 0, mnSrc, haVIP, tc.req.bytes(t))
			if r.rep.Code != mip.CodeAccepted || r.rep.Lifetime == 0 {
				t.Fatalf("setup: code %d lifetime %d", r.rep.Code, r.rep.Lifetime)
			}
			acc0, den0 := c.Stats.Codes[mip.CodeAccepted], c.Stats.Codes[mip.CodeInsufficientResources]
			b := append([]byte(nil), r.raw...)
			if !c.Deny(b, mip.CodeInsufficientResources) {
				t.Fatal("Deny refused a fresh acceptance")
			}
			d := verifyReply(t, b, tc.key)
			if d.Code != mip.CodeInsufficientResources || d.Lifetime != 0 || d.ID != r.rep.ID ||
				d.HomeAddr != r.rep.HomeAddr || d.HomeAgent != r.rep.HomeAgent || !bytes.Equal(d.NAI, r.rep.NAI) {
				t.Fatalf("denial %+v, from acceptance %+v", d, r.rep)
			}
			if c.Stats.Codes[mip.CodeAccepted] != acc0-1 || c.Stats.Codes[mip.CodeInsufficientResources] != den0+1 {
				t.Errorf("reply code counters not moved: 0: %d→%d, 130: %d→%d", acc0, c.Stats.Codes[0], den0, c.Stats.Codes[130])
			}
			// A denial is not denied again.
			if c.Deny(b, mip.CodeInsufficientResources) {
				t.Error("Deny rewrote a denial")
			}
		})
	}
}

func TestDenyRefusesWhatItCannotSign(t *testing.T) {
	c := newCore(t, 8)
	r := handle(t, c, 0, mnSrc, haVIP, req1(ts(0)).bytes(t))
	// Truncated, or an authenticator broken in transit: unchanged, false.
	for _, b := range [][]byte{r.raw[:10], append(append([]byte(nil), r.raw[:len(r.raw)-1]...), r.raw[len(r.raw)-1]^1)} {
		keep := append([]byte(nil), b...)
		if c.Deny(b, mip.CodeInsufficientResources) || !bytes.Equal(b, keep) {
			t.Errorf("Deny(% x) = true or changed it", keep)
		}
	}
	// The node's key changed by reload between the acceptance and the
	// denial: the old reply no longer verifies, so it is not re-signed
	// (with the new key the node could not check it either).
	cfg := testConfig(8)
	cfg.Nodes[0].Key = []byte("another-key-0000")
	if err := c.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	b := append([]byte(nil), r.raw...)
	if c.Deny(b, mip.CodeInsufficientResources) || !bytes.Equal(b, r.raw) {
		t.Error("Deny re-signed a reply made with a key that is gone")
	}
}

func TestDenyAllocatesNothing(t *testing.T) {
	c := newCore(t, 8)
	r := handle(t, c, 0, mnSrc, haVIP, req1(ts(0)).bytes(t))
	b := make([]byte, len(r.raw))
	allocs := testing.AllocsPerRun(100, func() {
		copy(b, r.raw)
		if !c.Deny(b, mip.CodeInsufficientResources) {
			t.Fatal("Deny failed")
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per Deny", allocs)
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
