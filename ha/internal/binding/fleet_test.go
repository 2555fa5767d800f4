package binding

import (
	"errors"
	"fmt"
	"testing"
)

const fleetHome = 0x0a0000c8 // 10.0.0.200, the fleet's dummy home address

func fleetEntry(i int, reg int64) Entry {
	e := live(fleetHome, reg, 1800)
	e.Key = FleetKey([]byte(fmt.Sprintf("mr%d@fleet.example", i)))
	e.CareOf = 0xc0000200 + uint32(i)
	return e
}

// Many routers on one home address: each its own binding, none replaces
// another; de-registration, deletion and expiry of one leave the others.
func TestFleetSharesOneHome(t *testing.T) {
	const n = 2000
	tb := New(n+1, n)
	ord := live(0x0a000005, t0, 1800) // an ordinary binding beside them
	ord.CareOf = 7
	if _, err := tb.Put(ord); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := tb.Put(fleetEntry(i, t0+int64(i%100)*sec)); err != nil {
			t.Fatalf("router %d: %v", i, err)
		}
	}
	if tb.Len() != n+1 {
		t.Fatalf("Len %d, want %d: routers of one shared home replaced each other", tb.Len(), n+1)
	}
	for i := range n {
		w := fleetEntry(i, 0)
		if e := tb.GetKey(fleetHome, w.Key); e == nil || e.CareOf != w.CareOf || e.Key != w.Key {
			t.Fatalf("router %d: got %+v", i, e)
		}
	}
	if tb.Get(fleetHome) != nil {
		t.Fatal("Get (key 0) found a fleet binding: an ordinary lookup must not see them")
	}
	if e := tb.Get(0x0a000005); e == nil || e.CareOf != 7 {
		t.Fatalf("ordinary binding: %+v", e)
	}
	k0, k1, k2 := fleetEntry(0, 0).Key, fleetEntry(1, 0).Key, fleetEntry(2, 0).Key
	if p := tb.TombstoneKey(fleetHome, k0, 99, 1, t0+300*sec); p == nil || !p.Tombstone() || p.Key != k0 {
		t.Fatalf("tombstone: %+v", p)
	}
	if !tb.DeleteKey(fleetHome, k1) || tb.DeleteKey(fleetHome, k1) {
		t.Fatal("DeleteKey: want true once")
	}
	if tb.Len() != n-1 || tb.GetKey(fleetHome, k2) == nil || tb.GetKey(fleetHome, k2).Tombstone() {
		t.Fatalf("Len %d after one tombstone and one delete; router 2 %+v", tb.Len(), tb.GetKey(fleetHome, k2))
	}
	// Expire what was registered at t0: routers 0, 100, …, 1900 (router 0
	// is a tombstone already) and the ordinary binding.
	gone := 0
	tb.Expire(t0+1800*sec, func(e *Entry) {
		if !e.Tombstone() {
			gone++
		}
	})
	if gone != n/100 || tb.GetKey(fleetHome, k2) == nil {
		t.Fatalf("expired %d, want %d", gone, n/100)
	}
	// The routers of one home spread over the index like distinct homes.
	if m := tb.maxChain(); m > 12 {
		t.Errorf("longest hash chain %d: the fleet's key is not in the bucket", m)
	}
}

func (t *Table) maxChain() int {
	m := 0
	for _, h := range t.hash {
		n := 0
		for i := h; i != 0; i = t.slab[i].hnext {
			n++
		}
		m = max(m, n)
	}
	return m
}

// A full table refuses the next router of a fleet like any new binding,
// and the floors of folded tombstones are per router.
func TestFleetFullAndFloors(t *testing.T) {
	tb := New(8, 0)
	for i := range 8 {
		if _, err := tb.Put(fleetEntry(i, t0)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.Put(fleetEntry(8, t0)); !errors.Is(err, ErrFull) {
		t.Fatalf("9th router: %v, want ErrFull", err)
	}
	if _, err := tb.Put(fleetEntry(3, t0+sec)); err != nil {
		t.Fatalf("renewal in a full table: %v", err)
	}
	tb = New(1, 1)
	tb.Put(live(0x0a000001, t0, 1800))
	tb.Tombstone(0x0a000002, 5, 1, t0+100*sec)
	k := fleetEntry(1, 0).Key
	if tb.TombstoneKey(fleetHome, k, 50, 1, t0+50*sec) != nil { // folded: nearer its purge
		t.Fatal("want the new tombstone folded")
	}
	if !tb.CoveredKey(fleetHome, k, 50, t0) {
		t.Fatal("the folded router's write at its own version is not covered")
	}
}

func TestFleetKey(t *testing.T) {
	a, b := FleetKey([]byte("mr1@fleet.example")), FleetKey([]byte("mr2@fleet.example"))
	if a == 0 || b == 0 || a == b || FleetKey(nil) == 0 {
		t.Fatalf("keys %x %x", a, b)
	}
	// Fixed: every member computes the same key (FNV-1a 64).
	if got := FleetKey([]byte("a")); got != 0xaf63dc4c8601ec8c {
		t.Fatalf("FleetKey(a) = %x", got)
	}
}

func TestFleetAllocs(t *testing.T) {
	tb := New(1000, 100)
	nai := []byte("mr7@fleet.example")
	i := 0
	n := testing.AllocsPerRun(200, func() {
		i++
		e := live(fleetHome, t0+int64(i)*sec, 1800)
		e.Key = FleetKey(nai)
		if _, err := tb.Put(e); err != nil {
			t.Fatal(err)
		}
		_ = tb.GetKey(fleetHome, e.Key)
		tb.TombstoneKey(fleetHome, e.Key, uint64(i), 1, t0+int64(i+300)*sec)
		_ = tb.CoveredKey(fleetHome, e.Key, 1, t0)
	})
	if n != 0 {
		t.Fatalf("%v allocations per fleet write", n)
	}
}

// BenchmarkGetFleet: n routers on one shared home address, looked up by
// key: as fast as n distinct homes (BenchmarkGet), the key spreading them
// over the index.
func BenchmarkGetFleet(b *testing.B) {
	forSizes(b, func(b *testing.B, n int) {
		tb, _ := benchTable(b, n)
		keys := make([]uint64, n)
		for i := range keys {
			e := fleetEntry(i, t0)
			keys[i] = e.Key
			if _, err := tb.Put(e); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if tb.GetKey(fleetHome, keys[i%n]) == nil {
				b.Fatal("missing")
			}
		}
	})
}
