package datapath

import (
	"net/netip"
)

// The home map's writes of an Apply in one BPF_MAP_UPDATE_BATCH (Linux 5.6;
// hash maps have it), as the prefix trie's (revprefix_batch.go): one bpf(2)
// per binding was 64 calls per UDP batch of registrations, each costing
// more in system-call entry and exit than the map's own work. A kernel
// without the command (ENOTSUPP, EINVAL) gets one call each, as before.

// homeBatchLen is how many pairs one call carries.
const homeBatchLen = 256

// homeBatch stages home → care-of pairs; its buffers are on the heap (the
// attr carries their addresses), made on first use: 2 KB.
type homeBatch struct {
	attr, keys, vals []byte
	idx              [homeBatchLen]int32
	n                int
	off              bool   // the kernel has no batch update for hash maps
	calls            uint64 // bpf(2) calls made, for tests
}

func (b *homeBatch) init() {
	if b.attr == nil {
		b.attr = heapBytes(64)
		b.keys, b.vals = heapBytes(homeBatchLen*4), heapBytes(homeBatchLen*4)
	}
}

// putHomes writes home → care-of for every i in [0, n) that get yields
// (ok), in order (a home given twice ends with its last pair); fail gets
// the index of a pair the map refused, with put's error.
func (f *revFilter) putHomes(n int, get func(i int) (home, careOf netip.Addr, ok bool), fail func(i int, err error)) {
	b := &f.hb
	b.init()
	for i := range n {
		home, careOf, ok := get(i)
		if !ok {
			continue
		}
		k := home.As4()
		copy(b.keys[b.n*4:], k[:])
		var v [4]byte
		careOfValue(&v, careOf)
		copy(b.vals[b.n*4:], v[:])
		b.idx[b.n] = int32(i)
		b.n++
		if b.n == homeBatchLen {
			f.flushHomes(fail)
		}
	}
	f.flushHomes(fail)
}

// flushHomes sends the staged pairs. The kernel stops at the first pair it
// refuses and says how many went before it: that one is written alone
// (putRaw: its own error, "map full" named), the rest sent again. An unknown
// command turns batches off for good.
func (f *revFilter) flushHomes(fail func(i int, err error)) {
	b := &f.hb
	for done := 0; done < b.n; {
		if b.off {
			for i := done; i < b.n; i++ {
				if err := f.homeOne(i); err != nil {
					fail(int(b.idx[i]), err)
				}
			}
			break
		}
		a := b.attr
		clear(a)
		ne.PutUint64(a[16:], ptr(b.keys[done*4:]))
		ne.PutUint64(a[24:], ptr(b.vals[done*4:]))
		ne.PutUint32(a[32:], uint32(b.n-done))
		ne.PutUint32(a[36:], uint32(f.homes))
		_, err := bpfCall(bpfMapUpdateBatch, a[:56])
		b.calls++
		sent := min(int(ne.Uint32(a[32:])), b.n-done)
		done += sent
		if err == nil || done >= b.n {
			break
		}
		if e := f.homeOne(done); e != nil {
			fail(int(b.idx[done]), e)
		} else if sent == 0 && batchUnsupported(err) {
			b.off = true
		}
		done++
	}
	b.n = 0
}

// homeOne writes staged pair i alone.
func (f *revFilter) homeOne(i int) error {
	b := &f.hb
	b.calls++
	return f.putRaw(revEntry{home: [4]byte(b.keys[i*4:]), careOf: [4]byte(b.vals[i*4:])})
}
