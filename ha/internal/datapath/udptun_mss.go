package datapath

// The optional TCP MSS clamp of the UDP tunnel (Config.TCPMSSClamp), in
// both programs: a TCP SYN going into the tunnel (encap, the
// correspondent's SYN or SYN-ACK) or coming out of it (decap, the node's)
// whose MSS option exceeds the tunnel MTU less 40 gets that value, with
// the TCP checksum patched (bpf_l4_csum_replace). So neither end sends a
// segment the tunnel must fragment or refuse, even when the ICMP
// "fragmentation needed" the route MTU produces is filtered on its way to
// the correspondent (the classic PMTUD black hole).
//
// Why in the programs rather than an nftables "tcp option maxseg size
// set" rule: the programs already see exactly the tunnelled packets (a
// rule would need the set of UDP-tunnelled homes kept beside the map), and
// the boards' image carries no nft binary nor an nftables netlink encoder.
//
// Only the usual layout is clamped: IPv4 without options, not a fragment,
// TCP with the MSS option first (kind 2, length 4), which is where Linux,
// the BSDs and Windows put it. Anything else passes unchanged.

import "golang.org/x/sys/unix"

// Kernel numbers (include/uapi/linux/bpf.h) the clamp adds.
const (
	fnSkbStoreBytes   = 9
	fnL4CsumReplace   = 11
	fnSkbLoadBytesAbs = fnSkbLoadBytes

	bpfRSH = 0x70
	bpfJGT = 0x20

	// the clamp's stack: the packet's first 44 bytes, the new MSS
	mssBuf = -120
	mssNew = -64
	mssIdx = -68
)

func rsh64Imm(dst uint8, imm int32) insn {
	return insn{code: bpfALU64 | bpfRSH | bpfK, dst: dst, imm: imm}
}
func jgtImm(dst uint8, imm int32, to string) insn {
	return insn{code: bpfJMP | bpfJGT | bpfK, dst: dst, imm: imm, target: to}
}

// mssClamp is the clamp block, entered with r6 = skb and falling through
// to the label done. base is the offset of the IPv4 header from skb->data
// (0 in LWT xmit; the uplink's link-layer header length at tc ingress,
// where cls_bpf runs with the MAC header pushed back). It reads with
// bpf_skb_load_bytes from skb->data, which sees the packet's pages as well
// as its linear part (utLoadHeaders says why that matters). It uses r0-r5
// and r9 and counts into slot utMSSClamped.
func mssClamp(mss uint16, base int32, counts int, done string) []insn {
	p := []insn{mov64Reg(r1, r6), mov64Imm(r2, base), mov64Reg(r3, r10), add64Imm(r3, mssBuf), mov64Imm(r4, 44),
		call(fnSkbLoadBytesAbs),
	}
	p = append(p,
		jneImm(r0, 0, done), // shorter than IPv4 + TCP + MSS: nothing to clamp
		ldxB(r1, r10, mssBuf), jneImm(r1, 0x45, done),
		ldxB(r1, r10, mssBuf+9), jneImm(r1, 6, done), // TCP
		ldxH(r1, r10, mssBuf+6), and64Imm(r1, int32(htons(0x3fff))), jneImm(r1, 0, done),
		ldxB(r1, r10, mssBuf+32), rsh64Imm(r1, 4), jeqImm(r1, 5, done), // no options
		ldxB(r1, r10, mssBuf+33), and64Imm(r1, 0x02), jeqImm(r1, 0, done), // SYN
		ldxB(r1, r10, mssBuf+40), jneImm(r1, 2, done), // MSS, first
		ldxB(r1, r10, mssBuf+41), jneImm(r1, 4, done),
		ldxH(r9, r10, mssBuf+42),     // wire order, as l4_csum_replace wants it
		mov64Reg(r1, r9), toBE16(r1), // the value
		jgtImm(r1, int32(mss), "mss_set"),
		ja(done),
		at("mss_set", stH(r10, mssNew, int32(htons(mss)))),
		mov64Reg(r1, r6), mov64Imm(r2, base+20+16), mov64Reg(r3, r9), mov64Imm(r4, int32(htons(mss))), mov64Imm(r5, 2),
		call(fnL4CsumReplace),
		jneImm(r0, 0, done),
		mov64Reg(r1, r6), mov64Imm(r2, base+20+22), mov64Reg(r3, r10), add64Imm(r3, mssNew), mov64Imm(r4, 2), mov64Imm(r5, 0),
		call(fnSkbStoreBytes),
		jneImm(r0, 0, done),
		stW(r10, mssIdx, utMSSClamped),
	)
	p = append(p, ldMapFD(r1, counts)...)
	return append(p,
		mov64Reg(r2, r10), add64Imm(r2, mssIdx),
		call(fnMapLookupElem),
		jeqImm(r0, 0, done),
		ldxDW(r1, r0, 0), add64Imm(r1, 1), stxDW(r0, r1, 0),
	)
}

// macHeaderLen is the link-layer header length cls_bpf pushes at ingress
// for a device of ARPHRD type typ; ok false: unknown, no clamp there.
func macHeaderLen(typ uint16) (n int32, ok bool) {
	switch typ {
	case unix.ARPHRD_ETHER:
		return 14, true
	case unix.ARPHRD_NONE, unix.ARPHRD_RAWIP, unix.ARPHRD_PPP:
		return 0, true
	}
	return 0, false
}
