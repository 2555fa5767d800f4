package datapath

// The reverse-tunnel source check (RFC 3024 §5.2, issue 5): a packet that
// arrives through the tunnel device must come from the care-of address of
// the binding of its inner source. rp_filter only proves that the inner
// source is *some* registered home address; the kernel has no FIB match
// on the outer source (fib_validate_source clears the tunnel key), so this
// is a tc clsact ingress eBPF program on each tunnel device:
//
//	remote := bpf_skb_get_tunnel_key(skb).remote_ipv4  // the outer source
//	home   := the inner IPv4 source (network header + 12)
//	coa    := homes[home]      // a hash map the datapath keeps = the table
//	absent → coa := nets[home] // longest match among mobile networks (revprefix.go)
//	absent → drop (unknown home); coa != remote → drop (wrong care-of);
//	else pass; every verdict counted in a per-CPU array.
//
// The map is sized to the binding table's capacity and preallocated by the
// kernel (a full table never fails an update for memory).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Verdict slots of the counter map.
const (
	revPassed      = iota // outer source = the binding's care-of address
	revWrongCareOf        // inner source registered, but from another care-of
	revUnknownHome        // inner source is no registered home address
	revMalformed          // not IPv4, no tunnel metadata, or too short
	revSlots
)

// tc numbers (linux/pkt_sched.h, linux/pkt_cls.h) x/sys/unix lacks.
const (
	tcHClsact          = 0xfffffff1 // TC_H_CLSACT: the clsact qdisc's parent
	tcHMinIngress      = 0xfff2     // TC_H_MIN_INGRESS
	tcaBPFFD           = 6
	tcaBPFName         = 7
	tcaBPFFlags        = 8
	tcaBPFFlagActDirec = 1 // TCA_BPF_FLAG_ACT_DIRECT: the program's return value is the verdict
	tcmsgLen           = 20
	ethPAll            = 0x0003
	ethPIP             = 0x0800
	// revPrio and revHandle name our filter, so that a restarted agent
	// replaces its predecessor's instead of stacking a second one.
	revPrio   = 0x4d4 // "MIP": any value; fixed so replace finds it
	revHandle = 1
	revName   = "hagent_rev"
)

// revProgram is the filter, for the given map fds. Stack: fp-8 the tunnel
// key (tunnel_id, remote_ipv4 — the 8-byte layout every kernel since 4.3
// accepts for IPv4), fp-12 the inner source, fp-16 the counter index,
// fp-24 the trie key (prefix length 32, the inner source).
func revProgram(homes, nets, counts int) []insn {
	p := []insn{
		mov64Reg(r6, r1), // r6 = skb, kept across calls
		ldxW(r1, r6, 16), // __sk_buff.protocol
		jneImm(r1, int32(htons(ethPIP)), "malformed"),
		mov64Reg(r1, r6),
		mov64Reg(r2, r10), add64Imm(r2, -8),
		mov64Imm(r3, 8),
		mov64Imm(r4, 0),
		call(fnSkbGetTunnelKey),
		jneImm(r0, 0, "malformed"),
		ldxW(r7, r10, -4), // remote_ipv4, host order
		mov64Reg(r1, r6),
		mov64Imm(r2, 12), // iphdr.saddr
		mov64Reg(r3, r10), add64Imm(r3, -12),
		mov64Imm(r4, 4),
		mov64Imm(r5, bpfHdrStartNet),
		call(fnSkbLoadBytesRelative),
		jneImm(r0, 0, "malformed"),
	}
	p = append(p, ldMapFD(r1, homes)...)
	p = append(p,
		mov64Reg(r2, r10), add64Imm(r2, -12),
		call(fnMapLookupElem),
		jeqImm(r0, 0, "nets"),
		at("found", ldxW(r1, r0, 0)),
		jneReg(r1, r7, "wrong"),
		mov64Imm(r8, revPassed), mov64Imm(r9, tcActOK), ja("count"),
		at("nets", mov64Imm(r1, 32)),
		stxW(r10, r1, -24),
		ldxW(r1, r10, -12),
		stxW(r10, r1, -20),
	)
	p = append(p, ldMapFD(r1, nets)...)
	p = append(p,
		mov64Reg(r2, r10), add64Imm(r2, -24),
		call(fnMapLookupElem),
		jneImm(r0, 0, "found"),
		ja("unknown"),
		at("wrong", mov64Imm(r8, revWrongCareOf)), mov64Imm(r9, tcActShot), ja("count"),
		at("unknown", mov64Imm(r8, revUnknownHome)), mov64Imm(r9, tcActShot), ja("count"),
		at("malformed", mov64Imm(r8, revMalformed)), mov64Imm(r9, tcActShot),
		at("count", stxW(r10, r8, -16)),
	)
	p = append(p, ldMapFD(r1, counts)...)
	p = append(p,
		mov64Reg(r2, r10), add64Imm(r2, -16),
		call(fnMapLookupElem),
		jeqImm(r0, 0, "ret"),
		ldxDW(r1, r0, 0), add64Imm(r1, 1), stxDW(r0, r1, 0), // per-CPU: no atomics needed
		at("ret", mov64Reg(r0, r9)),
		exit(),
	)
	return p
}

// revFilter owns the maps and the program. Its buffers are fields of a
// heap object: bpf(2) attrs carry their addresses (see ptr).
type revFilter struct {
	homes, nets, counts, prog int
	ncpu                      int
	attr                      elemAttr
	key, val                  [4]byte
	lkey                      [lpmKeyLen]byte
	cnt                       []byte    // ncpu × 8: one per-CPU counter
	rd                        revReader // the owner's reads (Reconcile, Withdraw)
	pb                        lpmBatch  // the prefix trie's batches (revprefix_batch.go)
	hb                        homeBatch // the home map's (revhome_batch.go)
}

// kernelOptionBPF names what the check needs, for start-up errors.
const kernelOptionBPF = "CONFIG_BPF_SYSCALL, CONFIG_NET_SCH_INGRESS (module sch_ingress) and CONFIG_NET_CLS_BPF (module cls_bpf)"

// newRevFilter creates the maps (home → care-of for capacity bindings, and
// the counters) and loads the program.
func newRevFilter(capacity int) (*revFilter, error) {
	if capacity <= 0 {
		capacity = 1
	}
	ncpu, err := possibleCPUs()
	if err != nil {
		return nil, err
	}
	f := &revFilter{homes: -1, nets: -1, counts: -1, prog: -1, ncpu: ncpu, cnt: heapBytes(8 * ncpu)}
	if f.homes, err = mapCreate(bpfMapTypeHash, 4, 4, uint32(capacity), "hagent_homes"); err != nil {
		return nil, bpfErr("creating the home → care-of map", err)
	}
	if f.nets, err = mapCreateLPM(lpmCapacity(capacity), "hagent_nets"); err != nil {
		f.close()
		return nil, bpfErr("creating the mobile network → care-of map", err)
	}
	if f.counts, err = mapCreate(bpfMapTypePercpuArray, 4, 8, revSlots, "hagent_revcnt"); err != nil {
		f.close()
		return nil, bpfErr("creating the counter map", err)
	}
	code, err := assemble(revProgram(f.homes, f.nets, f.counts))
	if err != nil {
		f.close()
		return nil, err
	}
	if f.prog, err = progLoad(bpfProgTypeSchedCls, code, "MIT", revName); err != nil {
		f.close()
		return nil, bpfErr("loading the tc program", err)
	}
	return f, nil
}

func bpfErr(what string, err error) error {
	switch {
	case errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("reverse-tunnel check: %s: the kernel has no bpf(2): enable CONFIG_BPF_SYSCALL (or set datapath.reverse_check = false)", what)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("reverse-tunnel check: %s: %w: run as root (CAP_BPF and CAP_NET_ADMIN), or set datapath.reverse_check = false", what, err)
	}
	return fmt.Errorf("reverse-tunnel check: %s: %w", what, err)
}

func (f *revFilter) close() {
	for _, fd := range []*int{&f.prog, &f.counts, &f.nets, &f.homes} {
		if *fd >= 0 {
			_ = unix.Close(*fd)
			*fd = -1
		}
	}
}

func careOfValue(v *[4]byte, careOf netip.Addr) {
	// bpf_skb_get_tunnel_key gives remote_ipv4 in host order.
	binary.NativeEndian.PutUint32(v[:], binary.BigEndian.Uint32(careOf.AsSlice()))
}

// put maps home → careOf (insert or replace).
func (f *revFilter) put(home, careOf netip.Addr) error {
	f.key = home.As4()
	careOfValue(&f.val, careOf)
	if err := f.attr.op(bpfMapUpdate, f.homes, f.key[:], f.val[:]); err != nil {
		if errors.Is(err, unix.E2BIG) {
			return fmt.Errorf("reverse-tunnel map full: %w", err)
		}
		return fmt.Errorf("reverse-tunnel map: %w", err)
	}
	return nil
}

// del removes home; absent is not an error.
func (f *revFilter) del(home netip.Addr) error {
	f.key = home.As4()
	if err := f.attr.op(bpfMapDelete, f.homes, f.key[:], nil); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("reverse-tunnel map: %w", err)
	}
	return nil
}

// revEntry is one home → care-of pair as the map holds it (the care-of in
// the program's byte order: careOfValue).
type revEntry struct{ home, careOf [4]byte }

func byRevHome(a, b revEntry) int { return cmp4(a.home, b.home) }

// sync converges the map to want (any order; a home given twice counts
// once) from have, the map as readAll read it (sorted
// by home); it returns entries written and removed.
func (f *revFilter) sync(want, have []revEntry) (added, removed int, err error) {
	// Unstable (pdqsort, half the time of a stable sort at 100k): a home
	// given twice carries the same pair (the same binding yielded twice;
	// one changed in between is Apply's and left out by the caller).
	slices.SortFunc(want, byRevHome)
	var bad []error
	i := 0 // have[i:] not yet matched
	for w := range want {
		if w > 0 && want[w].home == want[w-1].home {
			continue
		}
		e := want[w]
		for i < len(have) && cmp4(have[i].home, e.home) < 0 {
			if err := f.del(netip.AddrFrom4(have[i].home)); err != nil {
				bad = append(bad, err)
			} else {
				removed++
			}
			i++
		}
		if i < len(have) && have[i].home == e.home {
			i++
			if have[i-1].careOf == e.careOf {
				continue
			}
		}
		if err := f.putRaw(e); err != nil {
			bad = append(bad, fmt.Errorf("home %v: %w", netip.AddrFrom4(e.home), err))
		} else {
			added++
		}
	}
	for ; i < len(have); i++ {
		if err := f.del(netip.AddrFrom4(have[i].home)); err != nil {
			bad = append(bad, err)
		} else {
			removed++
		}
	}
	if len(bad) > 0 {
		return added, removed, fmt.Errorf("%d map updates failed, first: %w", len(bad), bad[0])
	}
	return added, removed, nil
}

// putRaw writes one pair already in the map's byte order.
func (f *revFilter) putRaw(e revEntry) error {
	f.key, f.val = e.home, e.careOf
	if err := f.attr.op(bpfMapUpdate, f.homes, f.key[:], f.val[:]); err != nil {
		if errors.Is(err, unix.E2BIG) {
			return fmt.Errorf("reverse-tunnel map full: %w", err)
		}
		return fmt.Errorf("reverse-tunnel map: %w", err)
	}
	return nil
}

// revReader reads the map back. Its buffers are its own: the owner loop
// reads through the revFilter's, the periodic scan (another goroutine)
// through the kernel's, while the owner keeps writing the map.
type revReader struct {
	attr                elemAttr
	key, val, cur, next [4]byte
	keys                [][4]byte
	have                []revEntry
	noBatch             bool
	batch, bkeys, bvals []byte
	tokIn, tokOut       []byte
}

// list reads every key of map fd (a snapshot: deleting while walking a
// hash map would restart the walk).
func (r *revReader) list(fd int) ([][4]byte, error) {
	r.keys = r.keys[:0]
	first := true
	for {
		var err error
		if first {
			err = r.attr.opNext(fd, nil, r.next[:])
			first = false
		} else {
			err = r.attr.opNext(fd, r.cur[:], r.next[:])
		}
		if errors.Is(err, unix.ENOENT) {
			return r.keys, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reverse-tunnel map: listing: %w", err)
		}
		r.keys = append(r.keys, r.next)
		r.cur = r.next
	}
}

// readAll reads every pair of map fd into r.have, sorted by home: in
// batches of revBatch (BPF_MAP_LOOKUP_BATCH, Linux 5.6) where the kernel
// has them, else key by key (two bpf(2) calls per entry: 225 ms at 100k).
// The result is valid until the next call.
func (r *revReader) readAll(fd int) ([]revEntry, error) {
	r.have = r.have[:0]
	if !r.noBatch {
		err := r.readBatch(fd)
		switch {
		case err == nil:
			slices.SortFunc(r.have, byRevHome)
			return r.have, nil
		case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.Errno(524)): // 524: ENOTSUPP
			r.noBatch = true // an older kernel: key by key from now on
			r.have = r.have[:0]
		default:
			return nil, fmt.Errorf("reverse-tunnel map: reading in batches: %w", err)
		}
	}
	keys, err := r.list(fd)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		r.key = k
		if err := r.attr.op(bpfMapLookup, fd, r.key[:], r.val[:]); err == nil {
			r.have = append(r.have, revEntry{home: k, careOf: r.val})
		} else if !errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("reverse-tunnel map: reading %v: %w", netip.AddrFrom4(k), err)
		}
	}
	slices.SortFunc(r.have, byRevHome)
	return r.have, nil
}

// trim lets large buffers go after a reconcile (800 KB at 100k).
func (r *revReader) trim() {
	if cap(r.have) > 4096 {
		r.have = nil
	}
	if cap(r.keys) > 4096 {
		r.keys = nil
	}
}

// revBatch is how many pairs one BPF_MAP_LOOKUP_BATCH call returns at most.
const revBatch = 1024

// readBatch appends every pair to r.have with BPF_MAP_LOOKUP_BATCH. The
// attr is union bpf_attr's batch struct: in_batch, out_batch, keys, values
// (pointers), count, map_fd, elem_flags, flags.
func (r *revReader) readBatch(fd int) error {
	if r.batch == nil {
		r.batch = heapBytes(64)
		r.bkeys, r.bvals = heapBytes(4*revBatch), heapBytes(4*revBatch)
		r.tokIn, r.tokOut = heapBytes(8), heapBytes(8)
	}
	ne := binary.NativeEndian
	for first := true; ; first = false {
		a := r.batch
		clear(a)
		if !first {
			copy(r.tokIn, r.tokOut)
			ne.PutUint64(a[0:], ptr(r.tokIn))
		}
		ne.PutUint64(a[8:], ptr(r.tokOut))
		ne.PutUint64(a[16:], ptr(r.bkeys))
		ne.PutUint64(a[24:], ptr(r.bvals))
		ne.PutUint32(a[32:], revBatch)
		ne.PutUint32(a[36:], uint32(fd))
		_, err := bpfCall(bpfMapLookupBatch, a[:56])
		n := int(ne.Uint32(a[32:]))
		if (err == nil || errors.Is(err, unix.ENOENT)) && n <= revBatch {
			for i := range n {
				var e revEntry
				copy(e.home[:], r.bkeys[4*i:])
				copy(e.careOf[:], r.bvals[4*i:])
				r.have = append(r.have, e)
			}
		}
		if errors.Is(err, unix.ENOENT) {
			return nil // the last batch (possibly empty)
		}
		if err != nil {
			return err
		}
	}
}

// clearAll empties the map (Withdraw).
func (f *revFilter) clearAll() error {
	keys, err := f.rd.list(f.homes)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := f.del(netip.AddrFrom4(k)); err != nil {
			return err
		}
	}
	f.rd.trim()
	return nil
}

// counters sums each verdict over the CPUs.
func (f *revFilter) counters() (c [revSlots]uint64, err error) {
	for i := range c {
		binary.NativeEndian.PutUint32(f.key[:], uint32(i))
		if err := f.attr.op(bpfMapLookup, f.counts, f.key[:], f.cnt); err != nil {
			return c, fmt.Errorf("reverse-tunnel counters: %w", err)
		}
		for cpu := 0; cpu < f.ncpu; cpu++ {
			c[i] += binary.NativeEndian.Uint64(f.cnt[8*cpu:])
		}
	}
	return c, nil
}

// opNext is BPF_MAP_GET_NEXT_KEY; a nil key asks for the first.
func (a *elemAttr) opNext(fd int, key, next []byte) error {
	clear(a.b[:])
	binary.NativeEndian.PutUint32(a.b[0:], uint32(fd))
	if key != nil {
		binary.NativeEndian.PutUint64(a.b[8:], ptr(key))
	}
	binary.NativeEndian.PutUint64(a.b[16:], ptr(next))
	_, err := bpfCall(bpfMapNextKey, a.b[:])
	return err
}

// ---- tc: attaching the program ----

func appendTcmsg(b []byte, ifindex int32, handle, parent, info uint32) []byte {
	b = append(b, unix.AF_UNSPEC, 0, 0, 0)
	b = ne.AppendUint32(b, uint32(ifindex))
	b = ne.AppendUint32(b, handle)
	b = ne.AppendUint32(b, parent)
	return ne.AppendUint32(b, info)
}

// appendQdiscClsact appends an RTM_NEWQDISC body adding the clsact qdisc.
func appendQdiscClsact(b []byte, ifindex uint32) []byte {
	b = appendTcmsg(b, int32(ifindex), tcHClsact&0xffff0000, tcHClsact, 0)
	return attrString(b, unix.TCA_KIND, "clsact")
}

// appendFilterBPF appends an RTM_NEWTFILTER/DELTFILTER body for our
// direct-action bpf filter on ingress (prog < 0: no options, for delete).
func appendFilterBPF(b []byte, ifindex uint32, prog int) []byte {
	info := uint32(revPrio)<<16 | uint32(htons(ethPAll))
	b = appendTcmsg(b, int32(ifindex), revHandle, tcHClsact&0xffff0000|tcHMinIngress, info)
	b = attrString(b, unix.TCA_KIND, "bpf")
	if prog < 0 {
		return b
	}
	b, o := nest(b, unix.TCA_OPTIONS)
	b = attrU32(b, tcaBPFFD, uint32(prog))
	b = attrString(b, tcaBPFName, revName)
	b = attrU32(b, tcaBPFFlags, tcaBPFFlagActDirec)
	return end(b, o)
}

// attachRev puts our filter on ingress of the tunnel device ifindex
// (clsact first; present is fine), replacing a predecessor's.
func (k *kernel) attachRev(ifindex uint32, name string) error {
	_, err := k.exec(unix.RTM_NEWQDISC, netlink.Acknowledge|netlink.Create|netlink.Excl, appendQdiscClsact(nil, ifindex))
	switch {
	case errors.Is(err, unix.EEXIST):
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("datapath: reverse-tunnel check on %s: the kernel has no clsact qdisc: enable CONFIG_NET_SCH_INGRESS (module sch_ingress), or set datapath.reverse_check = false: %w", name, err)
	case err != nil:
		return fmt.Errorf("datapath: reverse-tunnel check: adding the clsact qdisc to %s: %w", name, err)
	}
	_, err = k.exec(unix.RTM_NEWTFILTER, netlink.Acknowledge|netlink.Create|netlink.Replace, appendFilterBPF(nil, ifindex, k.rev.prog))
	switch {
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("datapath: reverse-tunnel check on %s: the kernel has no bpf classifier: enable CONFIG_NET_CLS_BPF (module cls_bpf), or set datapath.reverse_check = false: %w", name, err)
	case err != nil:
		return fmt.Errorf("datapath: reverse-tunnel check: attaching the filter to %s: %w", name, err)
	}
	return nil
}

// detachRev removes our filter (absent: fine); the clsact qdisc stays,
// it may carry other filters.
func (k *kernel) detachRev(ifindex uint32) error {
	_, err := k.exec(unix.RTM_DELTFILTER, netlink.Acknowledge, appendFilterBPF(nil, ifindex, -1))
	if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("datapath: removing the reverse-tunnel filter: %w", err)
	}
	return nil
}
