package agent

import (
	"net/netip"
	"testing"
	"time"

	"github.com/hagent/hagent/tools/hostile/attack"
)

// Every datagram tools/hostile sends to the registration port (mutated
// and random requests, and the valid-looking flood for a pool and for
// unknown homes) is either answered or dropped with a reason, exactly once:
// what TestHostileInput (ha/itest) checks over the network, per message
// here, over more messages and seeds than the network test sends. A reply
// dropped for size counts as a drop, so answered + dropped = received.
func TestHostileRequestsAllAccounted(t *testing.T) {
	cfg := testConfig(16) // smaller than the flooded pool (32): it fills, then 130
	for _, seed := range []uint64{1, 2, 3, 4} {
		c, err := NewCore(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.SetServing(true)
		g := attack.NewGen(attack.Config{HomeAgent: haAddr, PoolBase: netip.MustParseAddr("192.0.2.64"), PoolN: 32,
			PoolSPI: 400, PoolKey: keyPool, UnknownBase: netip.MustParseAddr("10.99.0.1")}, seed)
		src := netip.MustParseAddrPort("198.51.100.99:434")
		out := make([]byte, 0, 2048)
		now, wall := int64(time.Hour), time.Now()
		for i := range 20000 {
			var pkt []byte
			var kind string
			if i%2 == 0 {
				pkt, kind = g.MIP(nil)
			} else {
				pkt, kind = g.Flood(nil)
			}
			before := c.Stats
			reply, _, _ := sealed(c, now, wall, src, haAddr, pkt, out[:0])
			now += int64(100 * time.Microsecond)
			var drops uint64
			for r := range c.Stats.Drops {
				drops += c.Stats.Drops[r] - before.Drops[r]
			}
			replies := c.Stats.Replies - before.Replies
			if c.Stats.Requests-before.Requests != 1 || replies+drops != 1 || (reply != nil) != (replies == 1) {
				t.Fatalf("seed %d, message %d (%s): requests +%d, replies +%d, drops +%d, reply %v: want one request, answered or dropped\n%x",
					seed, i, kind, c.Stats.Requests-before.Requests, replies, drops, reply != nil, pkt)
			}
		}
		// The mix reached the decisions that matter: accepted until the
		// table filled, then 130; failed authentication; malformed.
		for _, code := range []int{0, 130, 131, 134} {
			if c.Stats.Codes[code] == 0 {
				t.Errorf("seed %d: no reply with code %d in 20,000 hostile messages (codes: accepted %d, 130 %d, 131 %d, 134 %d)",
					seed, code, c.Stats.Codes[0], c.Stats.Codes[130], c.Stats.Codes[131], c.Stats.Codes[134])
			}
		}
	}
}
