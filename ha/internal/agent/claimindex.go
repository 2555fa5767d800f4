package agent

// claimIndex holds the mobile networks the routers of shared pools claim
// (pools without an nai: their routers share one [[node]] entry, so the
// configuration cannot tell whose a network is, and each claim is checked
// against the others when it is made). It answers, for a prefix p, "is p,
// a network containing p, or a network inside p held by another router?",
// which a hash of exact prefixes cannot (a network inside p is a range of
// keys, not a key). It is an ordered set of prefixes keyed by address, then
// length: every network inside p, and p itself, has a key in
// [key(p), key(last address of p, 32)], so one ordered walk finds them; the
// networks containing p are at most 31 exact lookups, one per length some
// claim has.
//
// The order is kept by a treap (a binary search tree whose nodes also form
// a heap on random priorities: expected depth O(log n) whatever the order
// of insertion) in a slab preallocated to the bound (claimCapacity): every
// operation after construction allocates nothing. A node is 24 bytes.

// claimNode is one claimed network.
type claimNode struct {
	key  uint64 // address << 8 | length
	home uint32 // the router's home address
	prio uint32
	l, r int32 // children (0: none; slot 0 is never used)
}

type claimIndex struct {
	nodes []claimNode
	root  int32
	free  int32 // free list, through l
	n     int
	lens  uint64 // bit n: some claim has length n (a hint: never cleared)
	rnd   uint32
}

func claimKey(addr uint32, bits uint8) uint64 { return uint64(addr)<<8 | uint64(bits) }

// newClaimIndex makes an index of capacity claims.
func newClaimIndex(capacity int) *claimIndex {
	x := &claimIndex{nodes: make([]claimNode, capacity+1), rnd: 0x9e3779b9}
	for i := capacity; i >= 1; i-- {
		x.nodes[i].l = x.free
		x.free = int32(i)
	}
	return x
}

// Len is how many claims the index holds (stale ones included).
func (x *claimIndex) Len() int { return x.n }

// Cap is how many it can hold.
func (x *claimIndex) Cap() int { return len(x.nodes) - 1 }

func (x *claimIndex) prio() uint32 {
	// xorshift32: the priorities need no quality beyond "unrelated to the keys"
	x.rnd ^= x.rnd << 13
	x.rnd ^= x.rnd >> 17
	x.rnd ^= x.rnd << 5
	return x.rnd
}

// find returns the node holding key k, or 0.
func (x *claimIndex) find(k uint64) int32 {
	for t := x.root; t != 0; {
		n := &x.nodes[t]
		switch {
		case k < n.key:
			t = n.l
		case k > n.key:
			t = n.r
		default:
			return t
		}
	}
	return 0
}

// get returns the holder of exactly (addr, bits).
func (x *claimIndex) get(addr uint32, bits uint8) (uint32, bool) {
	if t := x.find(claimKey(addr, bits)); t != 0 {
		return x.nodes[t].home, true
	}
	return 0, false
}

// next returns the first claim whose key is lo or above.
func (x *claimIndex) next(lo uint64) (key uint64, home uint32, ok bool) {
	best := int32(0)
	for t := x.root; t != 0; {
		if n := &x.nodes[t]; n.key >= lo {
			best, t = t, n.l
		} else {
			t = n.r
		}
	}
	if best == 0 {
		return 0, 0, false
	}
	return x.nodes[best].key, x.nodes[best].home, true
}

// put records (addr, bits) as home's; false when the index is full (the
// caller sweeps stale claims and tries again).
func (x *claimIndex) put(addr uint32, bits uint8, home uint32) bool {
	k := claimKey(addr, bits)
	if t := x.find(k); t != 0 { // an existing claim changes holder in place
		x.nodes[t].home = home
		return true
	}
	if x.free == 0 {
		return false
	}
	i := x.free
	x.free = x.nodes[i].l
	x.nodes[i] = claimNode{key: k, home: home, prio: x.prio()}
	x.n++
	x.lens |= 1 << bits
	x.root = x.insert(x.root, i)
	return true
}

// insert puts node i under t and returns the subtree's new root.
func (x *claimIndex) insert(t, i int32) int32 {
	if t == 0 {
		return i
	}
	n := &x.nodes[t]
	if x.nodes[i].key < n.key {
		n.l = x.insert(n.l, i)
		if x.nodes[n.l].prio > n.prio { // rotate right
			l := n.l
			n.l = x.nodes[l].r
			x.nodes[l].r = t
			return l
		}
	} else {
		n.r = x.insert(n.r, i)
		if x.nodes[n.r].prio > n.prio { // rotate left
			r := n.r
			n.r = x.nodes[r].l
			x.nodes[r].l = t
			return r
		}
	}
	return t
}

// del removes the claim with key k, if any.
func (x *claimIndex) del(k uint64) {
	x.root = x.remove(x.root, k)
}

func (x *claimIndex) remove(t int32, k uint64) int32 {
	if t == 0 {
		return 0
	}
	n := &x.nodes[t]
	switch {
	case k < n.key:
		n.l = x.remove(n.l, k)
		return t
	case k > n.key:
		n.r = x.remove(n.r, k)
		return t
	}
	m := x.merge(n.l, n.r)
	*n = claimNode{l: x.free}
	x.free = t
	x.n--
	return m
}

// merge joins two subtrees, every key of a below every key of b.
func (x *claimIndex) merge(a, b int32) int32 {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	case x.nodes[a].prio > x.nodes[b].prio:
		x.nodes[a].r = x.merge(x.nodes[a].r, b)
		return a
	default:
		x.nodes[b].l = x.merge(a, x.nodes[b].l)
		return b
	}
}

// conflict reports whether a claim of another holder than home overlaps
// (addr, bits) — equal, containing or inside — and is live (live: its
// holder's binding still carries it). A claim found stale is removed, and
// so is a stale one of home's own met on the way, so that stale claims
// cost one visit each.
func (x *claimIndex) conflict(addr uint32, bits uint8, home uint32, live func(home, addr uint32, bits uint8) bool) bool {
	if x.n == 0 {
		return false
	}
	// p itself, or a network containing it
	for l := int(bits); l >= 1; l-- {
		if x.lens&(1<<l) == 0 {
			continue // no claim of that length: no lookup
		}
		a := addr & (uint32(0xffffffff) << (32 - l))
		h, ok := x.get(a, uint8(l))
		if !ok {
			continue
		}
		if live(h, a, uint8(l)) {
			if h != home {
				return true
			}
			continue
		}
		x.del(claimKey(a, uint8(l)))
	}
	// a network inside p: keys from p's own to its last address's /32
	last := addr | ^(uint32(0xffffffff) << (32 - int(bits)))
	if bits == 0 {
		last = 0xffffffff
	}
	hi := claimKey(last, 32)
	for k := claimKey(addr, bits+1); k <= hi; {
		kk, h, ok := x.next(k)
		if !ok || kk > hi {
			break
		}
		a, b := uint32(kk>>8), uint8(kk)
		if live(h, a, b) {
			if h != home {
				return true
			}
		} else {
			x.del(kk)
		}
		k = kk + 1
	}
	return false
}

// sweep removes every stale claim (when the index is full), walking the
// keys in order.
func (x *claimIndex) sweep(live func(home, addr uint32, bits uint8) bool) int {
	removed := 0
	for k := uint64(0); ; {
		kk, h, ok := x.next(k)
		if !ok {
			return removed
		}
		if !live(h, uint32(kk>>8), uint8(kk)) {
			x.del(kk)
			removed++
		}
		k = kk + 1
	}
}
