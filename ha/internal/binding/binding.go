// Package binding is the Home Agent's bounded binding table (RFC 5944 §4.2.3,
// and the patent's "marked deleted" entries, claims 38-39).
//
// The table is sized once, at start, from the configuration: a slab of
// fixed-size, pointer-free entries (the garbage collector never scans it), a
// free list, a hash index chained by int32 slab index, and two hashed timing
// wheels (live bindings, tombstones) linked through the entries. Insert,
// renew, lookup, delete and expiry are O(1) and allocate nothing. The table
// never reads a clock: every time is monotonic nanoseconds given by the
// caller.
//
// A Table is owned by one goroutine (the agent's owner loop); it has no
// locks.
package binding

import (
	"errors"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"time"
	"unsafe"
)

// ErrFull is returned by Put when a new live binding does not fit. Nothing
// is evicted to make room; what to answer is the caller's policy.
var ErrFull = errors.New("binding: table full (live capacity reached): raise the configured binding capacity if this happens under normal load")

const (
	// tickShift sets the wheel granularity: 2^30 ns ≈ 1.07 s per slot.
	tickShift = 30
	// liveWheelBits: 65536 slots ≈ 19.5 h, longer than the longest
	// lifetime (65535 s), so live entries never wrap when Expire runs.
	liveWheelBits = 16
	// tombWheelBits: 4096 slots ≈ 73 min; tombstone purge periods are
	// seconds to minutes. Longer ones still work (they wrap).
	tombWheelBits = 12
	minWheelBits  = 6 // the occupancy bitmap needs at least one full word
)

const (
	stateFree uint8 = iota
	stateLive
	stateTomb
)

// Entry is one binding (or tombstone). Fields other than Home, Key and
// Expires may be changed through the pointer Get/Put return; Home, Key and
// Expires index the entry and change only through Put and Tombstone.
//
// An Entry is a value: a copy carries everything the binding is (the NAT
// endpoint and the mobile router's networks included, inline, see nets.go),
// so it can be queued after the table has moved on.
//
// Layout: entries are 128 bytes apart, so every entry starts on a 16-byte
// boundary and a 16-byte aligned group of fields never spans two cache
// lines. The first group holds what an expiry walk reads of every entry in
// a wheel slot (Expires, wnext) and the hash chain link; Home follows, and
// Key in the same cache line (a lookup compares both).
type Entry struct {
	Expires int64  // monotonic ns: binding expiry, or for a tombstone its purge time
	wnext   int32  // next entry in the wheel slot list
	hnext   int32  // next entry in the hash chain; next free entry when free
	Home    uint32 // home address, IPv4 as uint32 (the key)
	wprev   int32  // previous entry in the wheel slot list
	wslot   int32  // wheel slot the entry is linked in (needed to unlink a slot head)
	state   uint8  // stateFree, stateLive, stateTomb
	Flags   uint8  // the request's S B D M G r T x flags byte
	Granted uint16 // lifetime granted, seconds
	// Key tells apart the bindings of one shared home address (a fleet of
	// mobile routers registering with one dummy home address, fleet.go):
	// FleetKey of the router's NAI. 0: the home address alone identifies
	// the binding, as for every binding of an address that is not shared.
	Key        uint64
	Registered int64  // monotonic ns of the last accepted (re)registration
	ID         uint64 // the mobile node's registration Identification (ordering of writes in the group)
	CareOf     uint32 // IPv4 as uint32
	HomeAgent  uint32 // address the registration was accepted on
	Origin     uint32 // identifier of the agent that accepted the registration (tie-break in the group)
	Node       int32  // index of the configured mobile node (config), -1 if unknown

	// NAT traversal (RFC 3519): the source address and UDP port the
	// registration came from (the NAT's mapping when there is one), and the
	// encapsulation chosen for the tunnel. Zero: not recorded (a binding as
	// before NAT traversal: the tunnel goes to CareOf as Flags say).
	NATAddr uint32
	NATPort uint16
	Encap   Encap

	// The mobile router's networks (RFC 5177): nets entries of netAddr and
	// netBits, masked, at most MaxPrefixes (AddPrefix, Prefix).
	nets    uint8
	netAddr [MaxPrefixes]uint32
	netBits [MaxPrefixes]uint8
	_       [8]byte // to 128 bytes: entries stay 16-byte aligned
}

// Tombstone reports whether e is a de-registration kept for the group
// ("marked deleted") rather than a live binding.
func (e *Entry) Tombstone() bool { return e.state == stateTomb }

// Remaining is the lifetime left at now, 0 when expired.
func (e *Entry) Remaining(now int64) time.Duration {
	if e.Expires <= now {
		return 0
	}
	return time.Duration(e.Expires - now)
}

// setPublic copies the exported fields (and the prefixes) of src, keeping
// e's links and state.
func (e *Entry) setPublic(src *Entry) {
	e.Home, e.Key, e.CareOf, e.HomeAgent, e.Origin = src.Home, src.Key, src.CareOf, src.HomeAgent, src.Origin
	e.ID, e.Node, e.Granted, e.Flags = src.ID, src.Node, src.Granted, src.Flags
	e.Registered, e.Expires = src.Registered, src.Expires
	e.NATAddr, e.NATPort, e.Encap = src.NATAddr, src.NATPort, src.Encap
	e.nets, e.netAddr, e.netBits = src.nets, src.netAddr, src.netBits
}

// Stats are the table's cumulative counters.
type Stats struct {
	Inserts    uint64 // new live bindings (including tombstone → live)
	Renewals   uint64 // Put on an existing live binding
	Deletes    uint64 // Delete, and live bindings dropped by Tombstone when tombCapacity is 0
	Tombstoned uint64 // tombstones created or refreshed
	Expired    uint64 // live bindings removed by Expire
	Purged     uint64 // tombstones removed by Expire
	Full       uint64 // Put refused with ErrFull
	// TombEvicted: tombstones dropped before their purge time because every
	// slot was taken; their versions live on in the floors (Covered), so
	// none of them can be undone by a stale write. Non-zero only beyond the
	// table's bound: more distinct home addresses written within a
	// tombstone period than capacity + tombCapacity.
	TombEvicted uint64
}

// Table is the bounded binding table. The zero value is not usable: call New.
type Table struct {
	slab  []Entry  // slab[0] is a sentinel: index 0 means "none" in every link
	src   []Source // beside slab, same index: where each entry's registration came from
	hash  []int32  // chain heads, indexed by bucket(home)
	hbits uint32
	seed  uint32
	free  int32 // head of the free list (released slots)
	hw    int32 // high-water mark: slots >= hw were never used (their pages stay untouched)

	capacity, tombCapacity int
	live, tombs            int

	floors []floor // versions of tombstones folded for lack of room (floor.go)
	fbits  uint32
	clock  int64 // the latest now a caller gave (Expire, Put's Registered): floors lapse by it

	lw, tw  wheel
	started bool // the wheels' cursors hold a real time
	busy    bool // inside an Expire callback: mutation is a bug
	stats   Stats
}

// New returns a table for capacity live bindings and tombCapacity tombstones,
// with all storage allocated up front. It panics if capacity <= 0 (the
// configuration is validated before); a negative tombCapacity counts as 0.
func New(capacity, tombCapacity int) *Table {
	return newTable(capacity, tombCapacity, liveWheelBits, tombWheelBits)
}

func newTable(capacity, tombCapacity int, liveBits, tombBits uint) *Table {
	if capacity <= 0 {
		panic("binding: New: capacity must be > 0 (validate the configuration first)")
	}
	if tombCapacity < 0 {
		tombCapacity = 0
	}
	total := capacity + tombCapacity
	if total >= math.MaxInt32/2 {
		panic("binding: New: capacity + tombCapacity too large for int32 slab indexes")
	}
	hb := uint32(bits.Len(uint(total))) // 2^hb > total: load factor < 1
	if hb < 4 {
		hb = 4
	}
	t := &Table{
		slab:         make([]Entry, total+1),
		src:          make([]Source, total+1),
		hash:         make([]int32, 1<<hb),
		hbits:        hb,
		seed:         rand.Uint32(),
		hw:           1,
		capacity:     capacity,
		tombCapacity: tombCapacity,
	}
	t.floors, t.fbits = newFloors(tombCapacity)
	t.lw.init(liveBits)
	t.tw.init(tombBits)
	return t
}

// Len is the number of live bindings.
func (t *Table) Len() int { return t.live }

// Tombs is the number of tombstones.
func (t *Table) Tombs() int { return t.tombs }

// Cap is the live capacity.
func (t *Table) Cap() int { return t.capacity }

// TombCap is the tombstone capacity: the slots beyond the live capacity.
// Tombstones may also fill slots live bindings leave free, so Tombs may
// exceed it (a de-registered binding's tombstone keeps its slot).
func (t *Table) TombCap() int { return t.tombCapacity }

// Stats returns the cumulative counters.
func (t *Table) Stats() Stats { return t.stats }

func (t *Table) bucket(home uint32, key uint64) uint32 {
	// Fibonacci hashing: consecutive home addresses (one subnet) spread
	// evenly; the per-table seed keeps chosen addresses from colliding on
	// purpose. A fleet's key is folded in, so that the routers of one
	// shared home address spread over the index like distinct homes (0
	// for every other binding: its bucket is its home's).
	return ((home ^ uint32(key^key>>32) ^ t.seed) * 0x9E3779B1) >> (32 - t.hbits)
}

func (t *Table) find(home uint32, key uint64) int32 {
	for i := t.hash[t.bucket(home, key)]; i != 0; i = t.slab[i].hnext {
		if e := &t.slab[i]; e.Home == home && e.Key == key {
			return i
		}
	}
	return 0
}

// find0 is find(home, 0), cheap enough for the inliner: bucket(home, 0)
// is the home's own bucket.
func (t *Table) find0(home uint32) int32 {
	for i := t.hash[((home^t.seed)*0x9E3779B1)>>(32-t.hbits)]; i != 0; i = t.slab[i].hnext {
		if e := &t.slab[i]; e.Home == home && e.Key == 0 {
			return i
		}
	}
	return 0
}

// Get returns the live binding or tombstone for home, nil if none. The
// pointer is valid until the next mutation of the table. It is GetKey
// with key 0: the bindings of a shared home address are not among them.
func (t *Table) Get(home uint32) *Entry {
	// Not GetKey(home, 0): find0 keeps the lookup inlined in callers, as it
	// was before fleets (a call more measured ~15 ns at a million bindings).
	if i := t.find0(home); i != 0 {
		return &t.slab[i]
	}
	return nil
}

// GetKey returns the live binding or tombstone for home and key (see
// Entry.Key), nil if none.
func (t *Table) GetKey(home uint32, key uint64) *Entry {
	if i := t.find(home, key); i != 0 {
		return &t.slab[i]
	}
	return nil
}

func (t *Table) mutating() {
	if t.busy {
		panic("binding: table mutated from an Expire callback (not allowed: act after Expire returns)")
	}
}

// start gives the wheels their first notion of "now" so that entries land
// in the slots around it (correctness never depends on it; speed does).
func (t *Table) start(now int64) {
	if t.started {
		return
	}
	t.started = true
	if t.lw.n == 0 {
		t.lw.cursor = now >> tickShift
	}
	if t.tw.n == 0 {
		t.tw.cursor = now >> tickShift
	}
}

// alloc takes a slot from the free list or above the high-water mark and
// links it into the hash index under home.
func (t *Table) alloc(home uint32, key uint64) int32 {
	i := t.free
	if i != 0 {
		t.free = t.slab[i].hnext
	} else {
		i = t.hw
		t.hw++ // cannot pass len(slab): callers make room first (makeRoom)
	}
	e := &t.slab[i]
	*e = Entry{Home: home, Key: key, Node: -1}
	t.src[i] = Source{}
	b := t.bucket(home, key)
	e.hnext = t.hash[b]
	t.hash[b] = i
	return i
}

// release unlinks slot i from the hash index and its wheel and frees it.
func (t *Table) release(i int32) {
	e := &t.slab[i]
	if e.state == stateLive {
		t.lw.remove(t.slab, i)
		t.live--
	} else {
		t.tw.remove(t.slab, i)
		t.tombs--
	}
	p := &t.hash[t.bucket(e.Home, e.Key)]
	for *p != i {
		p = &t.slab[*p].hnext
	}
	*p = e.hnext
	*e = Entry{hnext: t.free}
	t.free = i
}

// Put inserts or updates the live binding for e.Home and e.Key (a tombstone
// for them becomes live). Returns ErrFull only when inserting a NEW live
// binding into a full table; nothing is evicted then. Put does not judge
// which write is newer (ID/Origin): the caller does.
func (t *Table) Put(e Entry) (*Entry, error) {
	t.mutating()
	if e.Registered != 0 && e.Registered <= e.Expires {
		t.clock = max(t.clock, e.Registered)
		if !t.started {
			t.start(e.Registered)
		}
		t.lw.advance(e.Registered >> tickShift)
		t.tw.advance(e.Registered >> tickShift)
	}
	i := t.find(e.Home, e.Key)
	if i != 0 {
		p := &t.slab[i]
		if p.state == stateLive {
			old := p.Expires
			p.setPublic(&e)
			t.lw.moved(t.slab, i, old)
			t.stats.Renewals++
			t.src[i] = Source{}
			return p, nil
		}
		if t.live >= t.capacity {
			t.stats.Full++
			return nil, ErrFull
		}
		t.tw.remove(t.slab, i)
		t.tombs--
		p.setPublic(&e)
		p.state = stateLive
		t.lw.add(t.slab, i)
		t.live++
		t.stats.Inserts++
		t.src[i] = Source{}
		return p, nil
	}
	if t.live >= t.capacity || !t.makeRoom() {
		t.stats.Full++
		return nil, ErrFull
	}
	i = t.alloc(e.Home, e.Key)
	p := &t.slab[i]
	p.setPublic(&e)
	p.state = stateLive
	t.lw.add(t.slab, i)
	t.live++
	t.stats.Inserts++
	return p, nil
}

// Tombstone turns the binding for home into a tombstone (or creates one)
// with the given id/origin and purge time. A live binding keeps CareOf,
// HomeAgent, Node and Flags for diagnosis; Granted becomes 0.
//
// A live binding becomes a tombstone in its own slot: that never costs
// room, whatever the number of tombstones. Only a tombstone for a home the
// table does not hold needs a slot of its own; when every slot is taken
// (live bindings and tombstones together fill capacity + tombCapacity), the
// tombstone with the nearest purge time — the new one or one in the table
// — is folded into its floor instead (Stats().TombEvicted, Covered), and
// Tombstone returns nil if that was the new one. With tombCapacity 0 the
// live binding is deleted and Tombstone returns nil.
func (t *Table) Tombstone(home uint32, id uint64, origin uint32, purgeAt int64) *Entry {
	return t.TombstoneKey(home, 0, id, origin, purgeAt)
}

// TombstoneKey is Tombstone for the binding of home and key (Entry.Key).
func (t *Table) TombstoneKey(home uint32, key uint64, id uint64, origin uint32, purgeAt int64) *Entry {
	t.mutating()
	if !t.started {
		t.start(purgeAt)
	}
	i := t.find(home, key)
	if i != 0 && t.slab[i].state == stateTomb {
		p := &t.slab[i]
		old := p.Expires
		p.ID, p.Origin, p.Expires = id, origin, purgeAt
		t.tw.moved(t.slab, i, old)
		t.stats.Tombstoned++
		return p
	}
	if t.tombCapacity == 0 {
		if i != 0 {
			t.release(i)
			t.stats.Deletes++
		}
		return nil
	}
	if i != 0 { // live → tomb, in its own slot
		t.lw.remove(t.slab, i)
		t.live--
	} else {
		if t.full() {
			if at, _, ok := t.tw.min(t.slab); !ok || purgeAt <= at {
				t.raise(home, key, id, purgeAt) // the new one is nearest its purge: fold it
				t.stats.TombEvicted++
				t.stats.Tombstoned++
				return nil
			}
			t.makeRoom()
		}
		i = t.alloc(home, key)
	}
	p := &t.slab[i]
	p.state = stateTomb
	p.ID, p.Origin, p.Expires, p.Granted = id, origin, purgeAt, 0
	t.tw.add(t.slab, i)
	t.tombs++
	t.stats.Tombstoned++
	return p
}

// Delete removes the binding or tombstone for home entirely (the operator's
// `clear binding`). It reports whether there was one.
func (t *Table) Delete(home uint32) bool { return t.DeleteKey(home, 0) }

// DeleteKey is Delete for the binding of home and key (Entry.Key).
func (t *Table) DeleteKey(home uint32, key uint64) bool {
	t.mutating()
	i := t.find(home, key)
	if i == 0 {
		return false
	}
	t.release(i)
	t.stats.Deletes++
	return true
}

// Clear removes every entry (counters are kept). O(capacity).
func (t *Table) Clear() {
	t.mutating()
	clear(t.slab[:t.hw])
	clear(t.hash)
	clear(t.floors)
	t.lw.reset()
	t.tw.reset()
	t.free, t.hw, t.live, t.tombs = 0, 1, 0, 0
}

// Expire removes every live binding with Expires <= now and purges the
// tombstones past their purge time, calling fn (may be nil) for each before
// it goes; it returns how many. fn must not mutate the table (Put,
// Tombstone, Delete, Clear panic when called from fn); Get is fine, and fn
// must not keep the pointer. Collect what to do and do it after Expire
// returns.
//
// Cost: O(entries removed + entries sharing the ~1 s wheel slots between
// the previous call and now).
func (t *Table) Expire(now int64, fn func(*Entry)) int {
	t.mutating()
	t.start(now)
	t.clock = max(t.clock, now)
	n := t.expireWheel(&t.lw, now, fn)
	t.stats.Expired += uint64(n)
	m := t.expireWheel(&t.tw, now, fn)
	t.stats.Purged += uint64(m)
	return n + m
}

func (t *Table) expireWheel(w *wheel, now int64, fn func(*Entry)) int {
	w.lbOK = false // recomputed (exactly) on the next NextDeadline
	nt := now >> tickShift
	if w.n == 0 {
		w.cursor = nt // an empty wheel can move its cursor anywhere, even back
		return 0
	}
	if w.minOK && w.minAt > now {
		w.advance(nt) // nothing due: O(1)
		return 0
	}
	from := w.cursor
	if nt < from {
		// The clock is behind the cursor (a caller passed an older now):
		// every entry due by now sits in the cursor slot.
		nt = from
	}
	span := nt - from
	if span > w.mask {
		span = w.mask // a long gap: every slot once
	}
	removed := 0
	for k := int64(0); k <= span; {
		pos := (from + k) & w.mask
		if word := w.bits[pos>>6] >> (pos & 63); word == 0 {
			k += 64 - pos&63
			continue
		}
		i := w.heads[pos]
		for i != 0 {
			e := &t.slab[i]
			next := e.wnext
			if e.Expires <= now {
				if fn != nil {
					t.busy = true
					fn(e)
					t.busy = false
				}
				t.release(i)
				removed++
			}
			i = next
		}
		k++
	}
	w.cursor = nt
	return removed
}

// NextDeadline is the earliest Expires among live bindings and tombstones
// (exact, in ns), false when the table is empty. It is O(1) while the
// earliest entry stays; after it goes, the next call finds the new one in
// O(wheel slots/64 + entries in that slot).
//
// Calling Expire at every exact deadline rescans the current ~1 s slot each
// time; an owner loop that prefers batches arms its timer at NextWake.
func (t *Table) NextDeadline() (int64, bool) {
	a, _, okA := t.lw.min(t.slab)
	b, _, okB := t.tw.min(t.slab)
	return earliest(a, okA, b, okB)
}

// earliest combines the two wheels' answers.
func earliest(a int64, okA bool, b int64, okB bool) (int64, bool) {
	switch {
	case okA && okB:
		return min(a, b), true
	case okA:
		return a, true
	case okB:
		return b, true
	}
	return 0, false
}

// DeadlineBound is what an owner loop arms its timer with: a time no later
// than NextDeadline (false when the table is empty). It is exact after an
// Expire and may be earlier after renewals or removals of the earliest
// entry — the loop then wakes once for nothing, and Expire makes it exact
// again. Unlike NextDeadline it stays O(1) under a renewal storm: renewing
// the earliest binding invalidates the exact minimum, and finding it again
// walks that slot's chain — with a fleet registered in the same second, the
// whole table, once per loop iteration (measured: p99 latency over UDP went
// from 3.3 ms to well under 1 ms at 20,000 registrations/s).
func (t *Table) DeadlineBound() (int64, bool) {
	a, okA := t.lw.lowerBound(t.slab)
	b, okB := t.tw.lowerBound(t.slab)
	return earliest(a, okA, b, okB)
}

// NextWake is NextDeadline rounded up to the end of its ~1.07 s wheel slot:
// one Expire at that time removes the whole slot in one pass. Entries live
// at most one slot longer than granted.
func (t *Table) NextWake() (int64, bool) {
	d, ok := t.NextDeadline()
	if !ok {
		return 0, false
	}
	return ((d>>tickShift)+1)<<tickShift - 1, true
}

// Range calls fn for every live binding and tombstone, in slab order, until
// fn returns false. fn may Delete (any entry); entries Put during Range may
// or may not be visited. No allocation.
func (t *Table) Range(fn func(*Entry) bool) {
	t.RangeFrom(0, fn)
}

// RangeFrom is Range starting at slab position pos (0 = the beginning). It
// returns the position to resume from, 0 when the walk is complete: a table
// download can send a chunk per call. Entries inserted or deleted between
// calls may be missed or seen; each entry present throughout is seen once.
func (t *Table) RangeFrom(pos int, fn func(*Entry) bool) int {
	if pos < 1 {
		pos = 1
	}
	for i := pos; i < int(t.hw); i++ {
		e := &t.slab[i]
		if e.state == stateFree {
			continue
		}
		if !fn(e) {
			if i+1 >= int(t.hw) {
				return 0
			}
			return i + 1
		}
	}
	return 0
}

// AddrU32 is the IPv4 address a as a big-endian uint32 (IPv4-mapped IPv6
// addresses are unmapped); 0 for anything else.
func AddrU32(a netip.Addr) uint32 {
	a = a.Unmap()
	if !a.Is4() {
		return 0
	}
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// U32Addr is the inverse of AddrU32.
func U32Addr(u uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
}

// Bytes is the memory the table allocated at New (slab, index, wheels).
func (t *Table) Bytes() int {
	return len(t.slab)*int(unsafe.Sizeof(Entry{})+unsafe.Sizeof(Source{})) + 4*len(t.hash) +
		4*(len(t.lw.heads)+len(t.tw.heads)) + 8*(len(t.lw.bits)+len(t.tw.bits)) +
		len(t.floors)*int(unsafe.Sizeof(floor{}))
}
