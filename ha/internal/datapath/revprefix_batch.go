package datapath

// The prefix trie in batches. BPF_MAP_UPDATE_BATCH, _DELETE_BATCH and
// _LOOKUP_BATCH (Linux 5.6; LPM tries have them through the kernel's generic
// batch code; checked on 6.18) move up to lpmBatchLen entries per bpf(2)
// call. A system call costs more than the trie's own work on these
// machines: 400,000 prefixes took 0.15–0.4 s to insert, delete or read in
// batches, 0.9–2.5 s one call each (docs/performance.md, "Mobile networks
// at scale"). A kernel without the batch commands (ENOTSUPP, or EINVAL
// before 5.6) gets one call each.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

const (
	bpfMapUpdateBatch = 26
	bpfMapDeleteBatch = 27
	lpmBatchLen       = 1024
	// errnoENOTSUPP is the kernel's internal ENOTSUPP (524), what bpf(2)
	// returns for a batch command the map type lacks.
	errnoENOTSUPP = unix.Errno(524)
)

// lpmBatch stages trie entries for one batch call. Its buffers live on the
// heap (bpf(2) attrs carry their addresses, see ptr) and are made on first
// use: 12 KB, whatever the table's size.
type lpmBatch struct {
	attr, keys, vals []byte
	tokIn, tokOut    []byte // the lookup's resume token: a key
	idx              [lpmBatchLen]int32
	n                int
	off              bool // the kernel has no batch commands for tries
}

func (b *lpmBatch) init() {
	if b.attr == nil {
		b.attr = heapBytes(64)
		b.keys, b.vals = heapBytes(lpmBatchLen*lpmKeyLen), heapBytes(lpmBatchLen*4)
		b.tokIn, b.tokOut = heapBytes(lpmKeyLen), heapBytes(lpmKeyLen)
	}
}

func (b *lpmBatch) key(i int) []byte { return b.keys[i*lpmKeyLen : (i+1)*lpmKeyLen] }
func (b *lpmBatch) val(i int) []byte { return b.vals[i*4 : (i+1)*4] }

// stage adds one entry (careOf invalid: a removal) for the caller's index i.
func (b *lpmBatch) stage(i int, p netip.Prefix, careOf netip.Addr) {
	k := b.key(b.n)
	ne.PutUint32(k, uint32(p.Bits()))
	a := p.Addr().As4()
	copy(k[4:], a[:])
	if careOf.IsValid() {
		var v [4]byte
		careOfValue(&v, careOf)
		copy(b.val(b.n), v[:])
	}
	b.idx[b.n] = int32(i)
	b.n++
}

// call runs one batch command on entries [from, from+count) and returns how
// many the kernel processed.
func (f *revFilter) batchCall(cmd uintptr, from, count int) (int, error) {
	b := &f.pb
	a := b.attr
	clear(a)
	ne.PutUint64(a[16:], ptr(b.keys[from*lpmKeyLen:]))
	if cmd == bpfMapUpdateBatch {
		ne.PutUint64(a[24:], ptr(b.vals[from*4:]))
	}
	ne.PutUint32(a[32:], uint32(count))
	ne.PutUint32(a[36:], uint32(f.nets))
	_, err := bpfCall(cmd, a[:56])
	return min(int(ne.Uint32(a[32:])), count), err
}

func batchUnsupported(err error) bool {
	return errors.Is(err, errnoENOTSUPP) || errors.Is(err, unix.EINVAL)
}

// putPrefixes maps every prefix get yields (ok) to its care-of address, in
// batches; fail gets the index of an entry the trie refused.
func (f *revFilter) putPrefixes(n int, get func(i int) (netip.Prefix, netip.Addr, bool), fail func(i int, err error)) {
	for i := range n {
		if p, c, ok := get(i); ok {
			f.queuePut(i, p, c, fail)
		}
	}
	f.flush(bpfMapUpdateBatch, fail)
}

// queuePut stages prefix → careOf as entry i, sending the batch when it is
// full; the caller flushes (bpfMapUpdateBatch) after the last.
func (f *revFilter) queuePut(i int, p netip.Prefix, careOf netip.Addr, fail func(i int, err error)) {
	f.pb.init()
	f.pb.stage(i, p, careOf)
	if f.pb.n == lpmBatchLen {
		f.flush(bpfMapUpdateBatch, fail)
	}
}

// delPrefixes removes every prefix get yields (ok), in batches; absent is
// not an error.
func (f *revFilter) delPrefixes(n int, get func(i int) (netip.Prefix, bool), fail func(i int, err error)) {
	f.pb.init()
	for i := range n {
		if p, ok := get(i); ok {
			f.pb.stage(i, p, netip.Addr{})
			if f.pb.n == lpmBatchLen {
				f.flush(bpfMapDeleteBatch, fail)
			}
		}
	}
	f.flush(bpfMapDeleteBatch, fail)
}

// flush sends the staged entries. The kernel stops a batch at the first
// entry it refuses and reports how many went before it: that one is tried
// on its own, which gives its own error (or, for the removal of an absent
// prefix, none), and the rest are sent again. If it passes on its own, the
// batch refused it for a reason of its own: an unknown command (ENOTSUPP,
// EINVAL) turns batches off for good; anything else (a batch-only failure
// on some kernel) costs that one entry one more call.
func (f *revFilter) flush(cmd uintptr, fail func(int, error)) {
	b := &f.pb
	for done := 0; done < b.n; {
		if b.off {
			f.oneByOne(cmd, done, fail)
			break
		}
		n, err := f.batchCall(cmd, done, b.n-done)
		done += n
		if err == nil || done >= b.n {
			break
		}
		e := f.one(cmd, done)
		switch {
		case e == nil || cmd == bpfMapDeleteBatch && errors.Is(e, unix.ENOENT):
			if n == 0 && batchUnsupported(err) {
				b.off = true
			}
		default:
			fail(int(b.idx[done]), prefixMapErr(e))
		}
		done++
	}
	b.n = 0
}

func (f *revFilter) one(cmd uintptr, i int) error {
	if cmd == bpfMapUpdateBatch {
		return f.attr.op(bpfMapUpdate, f.nets, f.pb.key(i), f.pb.val(i))
	}
	return f.attr.op(bpfMapDelete, f.nets, f.pb.key(i), nil)
}

func (f *revFilter) oneByOne(cmd uintptr, from int, fail func(int, error)) {
	for i := from; i < f.pb.n; i++ {
		err := f.one(cmd, i)
		if err != nil && !(cmd == bpfMapDeleteBatch && errors.Is(err, unix.ENOENT)) {
			fail(int(f.pb.idx[i]), prefixMapErr(err))
		}
	}
}

func prefixMapErr(err error) error {
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.E2BIG) {
		return fmt.Errorf("reverse-tunnel prefix map full: %w", err)
	}
	return fmt.Errorf("reverse-tunnel prefix map: %w", err)
}

// listBatch appends every prefix of the trie to out with
// BPF_MAP_LOOKUP_BATCH (values are read and dropped).
func (f *revFilter) listBatch(out []netip.Prefix) ([]netip.Prefix, error) {
	b := &f.pb
	b.init()
	for first := true; ; first = false {
		a := b.attr
		clear(a)
		if !first {
			copy(b.tokIn, b.tokOut)
			ne.PutUint64(a[0:], ptr(b.tokIn))
		}
		ne.PutUint64(a[8:], ptr(b.tokOut))
		ne.PutUint64(a[16:], ptr(b.keys))
		ne.PutUint64(a[24:], ptr(b.vals))
		ne.PutUint32(a[32:], lpmBatchLen)
		ne.PutUint32(a[36:], uint32(f.nets))
		_, err := bpfCall(bpfMapLookupBatch, a[:56])
		n := int(ne.Uint32(a[32:]))
		if (err == nil || errors.Is(err, unix.ENOENT)) && n <= lpmBatchLen {
			for i := range n {
				k := b.key(i)
				bits := int(binary.NativeEndian.Uint32(k))
				out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte(k[4:8])), bits))
			}
		}
		if errors.Is(err, unix.ENOENT) {
			return out, nil // the last batch (possibly empty)
		}
		if err != nil {
			return out, err
		}
	}
}
