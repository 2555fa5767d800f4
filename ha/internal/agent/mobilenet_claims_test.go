package agent

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/mip"
)

func poolRouterReq(t testing.TB, home string, id uint64, nets ...mip.MobileNetPrefix) []byte {
	r := rq{Request: mip.Request{Lifetime: 300, HomeAddr: netip.MustParseAddr(home), HomeAgent: haVIP, CareOf: coa, ID: id}, spi: 400, key: keyPool}
	for _, n := range nets {
		r.MobileNet.Add(n)
	}
	return r.bytes(t.(*testing.T))
}

// A router of a shared pool claiming a network that contains another
// router's is refused (2), as one claiming a network inside another's is;
// and the other way round. Equal, containing and contained are one rule:
// the two networks overlap.
func TestMobileNetSharedPoolContainsOther(t *testing.T) {
	c := mnCore(t)
	r := handle(t, c, 0, mnSrc, haVIP, poolRouterReq(t, "192.0.2.70", ts(0), wire("10.20.2.0/24")))
	checkAcks(t, r, false, []ackWant{{0, "10.20.2.0/24"}})
	r = handle(t, c, 0, mnSrc, haVIP, poolRouterReq(t, "192.0.2.71", ts(time.Second),
		wire("10.20.0.0/16"), wire("10.20.2.0/23"), wire("10.20.2.0/25"), wire("10.20.4.0/24")))
	checkAcks(t, r, false, []ackWant{{2, "10.20.0.0/16"}, {2, "10.20.2.0/23"}, {2, "10.20.2.0/25"}, {0, "10.20.4.0/24"}})
	// The reverse: the first router now asks for a network containing the
	// second's.
	r = handle(t, c, 0, mnSrc, haVIP, poolRouterReq(t, "192.0.2.70", ts(2*time.Second), wire("10.20.2.0/24"), wire("10.20.0.0/21")))
	checkAcks(t, r, false, []ackWant{{0, "10.20.2.0/24"}, {2, "10.20.0.0/21"}})
	// Its own network contains nothing of another's: a larger one of its
	// own holding is fine once the other has let go.
	r = handle(t, c, 0, mnSrc, haVIP, poolRouterReq(t, "192.0.2.71", ts(3*time.Second), wire("10.20.8.0/24")))
	checkAcks(t, r, false, []ackWant{{0, "10.20.8.0/24"}})
	r = handle(t, c, 0, mnSrc, haVIP, poolRouterReq(t, "192.0.2.70", ts(4*time.Second), wire("10.20.0.0/21")))
	checkAcks(t, r, false, []ackWant{{0, "10.20.0.0/21"}})
}

// Routers of a shared pool registering, moving their networks around
// (claims going stale, the index swept when full) and refusing each
// other's: nothing allocated.
func TestMobileNetSharedPoolAllocatesNothing(t *testing.T) {
	c := mnCore(t)
	const routers, runs = 15, 400
	reqs := make([][]byte, runs+2) // AllocsPerRun runs once more, and the check after it
	for i := range reqs {
		var nets []mip.MobileNetPrefix
		for j := 0; j < 4; j++ {
			// networks shift with i: many distinct claims over the run,
			// overlapping others' (a /23 now and then)
			bits := uint8(24)
			if (i+j)%5 == 0 {
				bits = 23
			}
			third := byte((i*3 + j*7) % 200)
			if bits == 23 {
				third &^= 1
			}
			nets = append(nets, mip.MobileNetPrefix{Bits: bits, Addr: netip.AddrFrom4([4]byte{10, 20, third, 0})})
		}
		home := netip.AddrFrom4([4]byte{192, 0, 2, byte(65 + i%routers)})
		reqs[i] = poolRouterReq(t, home.String(), ts(time.Duration(i)*time.Millisecond), nets...)
	}
	out := make([]byte, 0, ReplyBufLen)
	i, refused, granted := 0, 0, 0
	allocs := testing.AllocsPerRun(runs, func() {
		reply, _, _ := sealed(c, int64(i), wall0, mnSrc, haVIP, reqs[i], out)
		if reply == nil {
			t.Fatal("no reply")
		}
		i++
	})
	if allocs != 0 {
		t.Fatalf("%.2f allocations per registration of a shared pool's router, want 0", allocs)
	}
	var rep mip.Reply
	reply, _, _ := sealed(c, int64(i), wall0, mnSrc, haVIP, reqs[i], out)
	if err := rep.UnmarshalBinary(reply); err != nil || rep.Code != mip.CodeAccepted || rep.MobileNet.N != 4 {
		t.Fatalf("last reply: %v code %d acks %d: the test measured the wrong path", err, rep.Code, rep.MobileNet.N)
	}
	c.table.Range(func(e *binding.Entry) bool {
		granted += e.NumPrefixes()
		return true
	})
	for _, a := range rep.MobileNet.List() {
		if a.Code == mip.MobileNetUnauthorized {
			refused++
		}
	}
	if granted == 0 || c.claims == nil || c.ClaimsFull != 0 {
		t.Fatalf("granted %d, index %v, claims left out %d", granted, c.claims != nil, c.ClaimsFull)
	}
	t.Logf("%d networks held, last request refused %d, index %d/%d", granted, refused, c.claims.Len(), c.claims.Cap())
}

// claimOracle is the pairwise truth: which live claims overlap.
type claimOracle map[uint32][]netip.Prefix

func (o claimOracle) conflict(p netip.Prefix, home uint32) bool {
	for h, ps := range o {
		if h == home {
			continue
		}
		for _, q := range ps {
			if q.Overlaps(p) {
				return true
			}
		}
	}
	return false
}

// FuzzClaimIndex drives the index as the agent does — routers register
// (each network granted only if the index finds no conflict), drop
// networks, go — and compares every answer with the pairwise oracle.
func FuzzClaimIndex(f *testing.F) {
	f.Add([]byte{1, 0, 24, 10, 1, 2, 0, 2, 0, 16, 10, 1, 0, 0})
	f.Add([]byte{0, 3, 8, 10, 0, 0, 0, 1, 3, 32, 10, 9, 9, 9, 2, 3, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, prog []byte) {
		const homes, capacity = 6, 6 * 4
		model := claimOracle{}
		x := newClaimIndex(capacity)
		live := func(h, a uint32, b uint8) bool {
			for _, q := range model[h] {
				if binding.AddrU32(q.Addr()) == a && uint8(q.Bits()) == b {
					return true
				}
			}
			return false
		}
		for len(prog) >= 7 {
			op, home := prog[0]%3, uint32(prog[1]%homes)+1
			bits := prog[2]%32 + 1
			// addresses from a small space, so that claims overlap
			a := binary.BigEndian.Uint32(prog[3:7]) & 0x0a0f0f0f
			p := netip.PrefixFrom(binding.U32Addr(a), int(bits)).Masked()
			prog = prog[7:]
			pa, pb := binding.AddrU32(p.Addr()), uint8(p.Bits())
			switch op {
			case 0, 1: // a registration claiming p (op 1: also keeping what it had)
				got, want := x.conflict(pa, pb, home, live), model.conflict(p, home)
				if got != want {
					t.Fatalf("conflict(%v, home %d) = %v, oracle %v; model %v", p, home, got, want, model)
				}
				nets := []netip.Prefix{}
				if op == 1 {
					nets = append(nets, model[home]...)
				}
				if !got && len(nets) < 4 && !contains(nets, p) {
					nets = append(nets, p)
				}
				model[home] = nets
				for _, q := range nets {
					qa, qb := binding.AddrU32(q.Addr()), uint8(q.Bits())
					if !x.put(qa, qb, home) && (x.sweep(live) == 0 || !x.put(qa, qb, home)) {
						t.Fatalf("index full of live claims: %d of %d, model %v", x.Len(), x.Cap(), model)
					}
				}
			case 2: // the router goes (its claims become stale)
				delete(model, home)
			}
			if x.Len() > x.Cap() {
				t.Fatalf("index holds %d of %d", x.Len(), x.Cap())
			}
		}
		checkTreap(t, x)
	})
}

func contains(ps []netip.Prefix, p netip.Prefix) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// checkTreap checks the order, the heap and the count.
func checkTreap(t *testing.T, x *claimIndex) {
	t.Helper()
	n := 0
	var walk func(i int32, lo, hi uint64)
	walk = func(i int32, lo, hi uint64) {
		if i == 0 {
			return
		}
		n++
		nd := &x.nodes[i]
		if nd.key < lo || nd.key > hi {
			t.Fatalf("node %d key %x outside [%x, %x]", i, nd.key, lo, hi)
		}
		for _, c := range []int32{nd.l, nd.r} {
			if c != 0 && x.nodes[c].prio > nd.prio {
				t.Fatalf("node %d: child %d has a higher priority", i, c)
			}
		}
		walk(nd.l, lo, nd.key-1)
		walk(nd.r, nd.key+1, hi)
	}
	walk(x.root, 0, ^uint64(0))
	if n != x.Len() {
		t.Fatalf("tree holds %d nodes, count %d", n, x.Len())
	}
}

// The index itself allocates nothing after construction.
func TestClaimIndexAllocatesNothing(t *testing.T) {
	x := newClaimIndex(1024)
	live := func(h, a uint32, b uint8) bool { return h%3 != 0 }
	i := uint32(0)
	allocs := testing.AllocsPerRun(2000, func() {
		a := 0x0a000000 | (i*2654435761)&0x00ffff00
		x.put(a, 24, i%50)
		x.conflict(a&0xffff0000, 16, i%50, live)
		x.conflict(a|0x80, 25, i%50, live)
		if i%7 == 0 {
			x.del(claimKey(a, 24))
		}
		if x.Len() == x.Cap() {
			x.sweep(live)
		}
		i++
	})
	if allocs != 0 {
		t.Fatalf("%.2f allocations per round, want 0", allocs)
	}
	checkTreap(t, x)
}
