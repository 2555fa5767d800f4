package datapath

// The reverse-tunnel check for mobile networks: a packet from a host behind
// a mobile router carries an inner source inside one of the router's
// prefixes, not its home address. The filter (revProgram) looks the inner
// source up in the home → care-of hash map first; on a miss it looks it up
// in an LPM trie of prefix → care-of (BPF_MAP_TYPE_LPM_TRIE, longest match)
// and compares the care-of the same way. A home address's traffic costs what
// it cost before (one hash lookup); only a mobile network's pays the trie.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

const (
	bpfMapTypeLPMTrie = 11
	bpfFNoPrealloc    = 1 // BPF_F_NO_PREALLOC: the kernel requires it of tries
	lpmKeyLen         = 8 // struct bpf_lpm_trie_key: u32 prefixlen (host order), then the address
	// lpmMax bounds the trie: eight prefixes per binding (the wire's
	// MaxMobileNetPrefixes), at most 16 M. Tries allocate per entry, so
	// the bound costs nothing until used.
	lpmPerBinding = 8
	lpmMax        = 1 << 24
)

// mapCreateLPM makes the prefix → care-of trie. Like mapCreate, with
// map_flags (offset 16 of BPF_MAP_CREATE's attr).
func mapCreateLPM(max uint32, name string) (int, error) {
	attr := heapBytes(44)
	ne := binary.NativeEndian
	ne.PutUint32(attr[0:], bpfMapTypeLPMTrie)
	ne.PutUint32(attr[4:], lpmKeyLen)
	ne.PutUint32(attr[8:], 4)
	ne.PutUint32(attr[12:], max)
	ne.PutUint32(attr[16:], bpfFNoPrealloc)
	bpfObjName(attr[28:44], name)
	fd, err := bpfCall(bpfMapCreate, attr)
	if errors.Is(err, unix.EPERM) {
		if unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}) == nil {
			fd, err = bpfCall(bpfMapCreate, attr)
		}
	}
	return fd, err
}

func lpmCapacity(capacity int) uint32 {
	return uint32(min(max(capacity, 1)*lpmPerBinding, lpmMax))
}

func lpmKey(k *[lpmKeyLen]byte, p netip.Prefix) {
	binary.NativeEndian.PutUint32(k[0:], uint32(p.Bits()))
	a := p.Addr().As4()
	copy(k[4:], a[:])
}

// putPrefix maps prefix → careOf (insert or replace).
func (f *revFilter) putPrefix(p netip.Prefix, careOf netip.Addr) error {
	lpmKey(&f.lkey, p)
	careOfValue(&f.val, careOf)
	if err := f.attr.op(bpfMapUpdate, f.nets, f.lkey[:], f.val[:]); err != nil {
		return prefixMapErr(err)
	}
	return nil
}

// delPrefix removes prefix; absent is not an error.
func (f *revFilter) delPrefix(p netip.Prefix) error {
	lpmKey(&f.lkey, p)
	if err := f.attr.op(bpfMapDelete, f.nets, f.lkey[:], nil); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("reverse-tunnel prefix map: %w", err)
	}
	return nil
}

// listPrefixes reads every prefix of the trie: in batches, or with
// get-next-key one at a time on a kernel without them.
func (f *revFilter) listPrefixes() ([]netip.Prefix, error) {
	if !f.pb.off {
		out, err := f.listBatch(nil)
		if err == nil {
			return out, nil
		}
		if !batchUnsupported(err) || len(out) > 0 {
			return nil, fmt.Errorf("reverse-tunnel prefix map: listing: %w", err)
		}
		f.pb.off = true
	}
	var out []netip.Prefix
	var cur, next [lpmKeyLen]byte
	for first := true; ; first = false {
		var err error
		if first {
			err = f.attr.opNext(f.nets, nil, next[:])
		} else {
			err = f.attr.opNext(f.nets, cur[:], next[:])
		}
		if errors.Is(err, unix.ENOENT) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reverse-tunnel prefix map: listing: %w", err)
		}
		bits := int(binary.NativeEndian.Uint32(next[0:]))
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte(next[4:8])), bits))
		cur = next
	}
}

// syncPrefixes removes every prefix of the trie not in keep.
func (f *revFilter) syncPrefixes(keep map[pfx]bool) (removed int, err error) {
	have, err := f.listPrefixes()
	if err != nil {
		return 0, err
	}
	stale := 0
	for _, p := range have {
		if !keep[pfxOf(p)] {
			have[stale] = p
			stale++
		}
	}
	removed = stale
	f.delPrefixes(stale, func(i int) (netip.Prefix, bool) { return have[i], true }, func(i int, e error) {
		removed--
		err = errors.Join(err, e)
	})
	return removed, err
}
