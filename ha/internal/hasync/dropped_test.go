package hasync

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/hagent/hagent/ha/internal/binding"
)

// A write that replaces a live binding whose networks it does not all
// carry says which it dropped (ActBinding's Dropped), however it arrives:
// as an update, or as an anti-entropy repair after the updates were lost;
// for a plain binding and for a fleet router's (Key not 0). Nothing is
// dropped when the networks stay or when the binding was a tombstone.
func TestBindingSaysDroppedNetworks(t *testing.T) {
	const home = 0x0a000001
	nai := []byte("r1@fleet.example")
	for _, tc := range []struct {
		name   string
		repair bool
		fleet  bool
	}{{"update", false, false}, {"repair", true, false}, {"fleet update", false, true}, {"fleet repair", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := group(t, 2, nil)
			lost := false
			s.drop = func(from, to int, typ uint8) bool { return lost && to == 1 && typ == TypeBindingUpdate }
			id := uint64(5)
			reg := func(nets ...string) {
				t.Helper()
				e := binding.Entry{Home: home, CareOf: 0xc6336401, HomeAgent: 0xc0a80101, ID: id, Granted: 3600}
				var k []byte
				if tc.fleet {
					k, e.Key = nai, binding.FleetKey(nai)
				}
				for _, n := range nets {
					e.AddPrefix(netip.MustParsePrefix(n))
				}
				var err error
				if s.out, err = s.nodes[0].m.RegisterNAI(s.now, e, k, s.out[:0]); err != nil {
					t.Fatal(err)
				}
				s.dispatch(0)
				id++
			}
			// dropped is what member 1 heard of the write of id-1.
			dropped := func() string {
				t.Helper()
				var got string
				n := 0
				for _, b := range s.bound {
					if b.at == 1 && b.a.Entry.Home == home && b.a.Entry.ID == id-1 {
						n++
						got = ""
						for i := range int(b.a.Dropped.N) {
							got += fmt.Sprint(b.a.Dropped.Prefix(i), " ")
						}
					}
				}
				if n == 0 {
					t.Fatalf("member 1 did not hear the write of id %d", id-1)
				}
				s.bound = s.bound[:0]
				return got
			}
			reg("10.9.1.0/24", "10.9.2.0/24")
			s.run(s.now + sec)
			if d := dropped(); d != "" {
				t.Fatalf("the first write dropped %q", d)
			}
			lost = tc.repair
			reg("10.9.1.0/24", "10.9.3.0/24")
			if tc.repair {
				// The retries run out, the digests differ, the repair brings it.
				s.run(s.now + 90*sec)
				if s.nodes[1].m.Counters().RepairsRecvd == 0 {
					t.Fatal("member 1 received no repair: the test did not take the repair path")
				}
			} else {
				s.run(s.now + sec)
			}
			same(t, s)
			if d := dropped(); d != "10.9.2.0/24 " {
				t.Fatalf("the write that dropped 10.9.2.0/24 said %q", d)
			}
			lost = false
			reg("10.9.1.0/24", "10.9.3.0/24")
			s.run(s.now + sec)
			if d := dropped(); d != "" {
				t.Fatalf("a write with the same networks dropped %q", d)
			}
		})
	}
}
