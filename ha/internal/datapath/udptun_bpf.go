package datapath

// UDP tunnelling (RFC 3519) for mobile nodes behind NAT, in the kernel. No
// kernel tunnel device knows the MIP tunnel data header, so two eBPF
// programs do what the ipip device does for plain tunnels, both driven by
// one hash map the datapath keeps like the reverse check's:
//
//	endpoints[home] = {NAT address, local address, NAT port}  (wire order)
//
// Encapsulation, an LWT xmit program on each UDP-tunnelled home address's
// /32 route ("encap bpf xmit"): look the inner destination up, push
// IPv4(local → NAT)/UDP(434 → NAT port)/tunnel data header(4, next 4) with
// bpf_lwt_push_encap, and return BPF_LWT_REROUTE so that the kernel routes
// the outer packet (its IP checksum is filled in by the helper).
//
// Decapsulation, a tc clsact ingress program on the uplink: an IPv4/UDP
// packet to port 434 whose payload starts with type 4 is tunnel data (a
// registration starts with type 1 and goes on to the agent's socket
// untouched); its inner source must be a UDP-tunnelled home whose binding
// names exactly the outer source address and port, else it is dropped and
// counted; a good one loses its 32 outer bytes (bpf_skb_adjust_room at the
// MAC layer) and the stack forwards the inner packet (or, a keepalive to
// our own address, answers it).
//
// This file holds the programs; udptun_linux.go loads and attaches them.

import "encoding/binary"

// Verdict slots of the UDP tunnel counter map (one per-CPU array for both
// programs).
const (
	utEncapSent      = iota // pushed and rerouted towards the NAT
	utEncapNoBinding        // routed to us, but the map has no endpoint
	utEncapFailed           // bpf_lwt_push_encap refused (no headroom, …)
	utDecapPassed           // outer source = the binding's: stripped, forwarded
	utDecapWrongAddr        // registered home, another outer address
	utDecapWrongPort        // registered home and address, another port (a stale NAT mapping)
	utDecapUnknown          // inner source is no UDP-tunnelled home
	utDecapNextHdr          // next header not IPv4 (GRE, minimal: not done in the kernel)
	utDecapFailed           // bpf_skb_adjust_room refused
	utDecapKeepalive        // an ICMP echo request to our address: a keepalive, stripped and answered by the stack
	utMSSClamped            // TCP SYNs whose MSS option was lowered (both directions)
	utSlots
)

// Kernel numbers (include/uapi/linux/bpf.h, lwtunnel.h) x/sys/unix lacks.
const (
	bpfProgTypeLWTXmit = 12

	fnSkbLoadBytes  = 26
	fnSkbAdjustRoom = 50
	fnLWTPushEncap  = 73
	fnSkbPullData   = 39

	bpfLWTEncapIP     = 2   // BPF_LWT_ENCAP_IP: the pushed header starts with an IP header
	bpfLWTReroute     = 128 // BPF_LWT_REROUTE: route the packet again by its new destination
	bpfOK             = 0
	bpfDrop           = 2
	bpfAdjRoomMAC     = 1 // BPF_ADJ_ROOM_MAC: add or remove room between L2 and L3
	bpfFRecomputeCsum = 1 // BPF_F_RECOMPUTE_CSUM: bpf_skb_store_bytes updates a CHECKSUM_COMPLETE sum
	lwtunnelBPF       = 6 // LWTUNNEL_ENCAP_BPF
	lwtBPFXmit        = 3 // LWT_BPF_XMIT
	lwtBPFHeadroom    = 4 // LWT_BPF_XMIT_HEADROOM
	lwtBPFProgFD      = 1 // LWT_BPF_PROG_FD
	lwtBPFProgName    = 2 // LWT_BPF_PROG_NAME

	// utOverhead is what the tunnel adds: IPv4 20 + UDP 8 + tunnel data 4.
	utOverhead = 32
	// utValueLen is an endpoint: NAT address 4, local address 4, NAT port 2, pad 2.
	utValueLen = 12
	mipPort    = 434
	mipTunnel  = 4 // tunnel data message type, and next header IPv4
)

// More instruction forms than the reverse check needs.
const (
	bpfST  = 0x02
	bpfALU = 0x04
	bpfB   = 0x10
	bpfH   = 0x08
	bpfAND = 0x50
	bpfEND = 0xd0
	bpfBE  = 0x08 // BPF_TO_BE: byte swap on little-endian hosts only
	bpfJLE = 0xb0
)

func ldxB(dst, src uint8, off int16) insn {
	return insn{code: bpfLDX | bpfMEM | bpfB, dst: dst, src: src, off: off}
}
func ldxH(dst, src uint8, off int16) insn {
	return insn{code: bpfLDX | bpfMEM | bpfH, dst: dst, src: src, off: off}
}
func stxH(dst, src uint8, off int16) insn {
	return insn{code: bpfSTX | bpfMEM | bpfH, dst: dst, src: src, off: off}
}
func stB(dst uint8, off int16, imm int32) insn {
	return insn{code: bpfST | bpfMEM | bpfB, dst: dst, off: off, imm: imm}
}
func stH(dst uint8, off int16, imm int32) insn {
	return insn{code: bpfST | bpfMEM | bpfH, dst: dst, off: off, imm: imm}
}
func stW(dst uint8, off int16, imm int32) insn {
	return insn{code: bpfST | bpfMEM | bpfW, dst: dst, off: off, imm: imm}
}
func jleImm(dst uint8, imm int32, to string) insn {
	return insn{code: bpfJMP | bpfJLE | bpfK, dst: dst, imm: imm, target: to}
}
func and64Imm(dst uint8, imm int32) insn {
	return insn{code: bpfALU64 | bpfAND | bpfK, dst: dst, imm: imm}
}

// toBE16 converts the low 16 bits of dst to network order in place (the
// kernel's BPF_END TO_BE: a swap on little-endian hosts, a no-op on
// big-endian ones, so the program is right on both).
func toBE16(dst uint8) insn { return insn{code: bpfALU | bpfEND | bpfBE, dst: dst, imm: 16} }

// wire32 is four wire bytes as the native integer a 32-bit store writes
// back as those bytes.
func wire32(b0, b1, b2, b3 byte) int32 {
	return int32(binary.NativeEndian.Uint32([]byte{b0, b1, b2, b3}))
}

// count appends the per-CPU counter increment for the slot in r8 and
// returns r9: the epilogue both programs share.
func count(counts int) []insn {
	p := []insn{at("count", stxW(r10, r8, -60))}
	p = append(p, ldMapFD(r1, counts)...)
	return append(p,
		mov64Reg(r2, r10), add64Imm(r2, -60),
		call(fnMapLookupElem),
		jeqImm(r0, 0, "ret"),
		ldxDW(r1, r0, 0), add64Imm(r1, 1), stxDW(r0, r1, 0), // per-CPU: no atomics needed
		at("ret", mov64Reg(r0, r9)),
		exit(),
	)
}

// verdict sets the counter slot and the return value, then jumps to count.
func verdict(label string, slot, ret int32) []insn {
	return []insn{at(label, mov64Imm(r8, slot)), mov64Imm(r9, ret), ja("count")}
}

// utEncapProgram is the LWT xmit program. Stack: fp-4 the inner
// destination (the map key), fp-40…fp-9 the 32 header bytes, fp-60 the
// counter index. r6 skb, r7 the endpoint, r8 slot, r9 return value.
//
// mss > 0 clamps TCP SYNs into the tunnel to it (udptun_mss.go).
func utEncapProgram(endpoints, counts int, mss uint16) []insn {
	p := []insn{
		mov64Reg(r6, r1),
		mov64Reg(r1, r6), mov64Imm(r2, 16), // iphdr.daddr: at LWT xmit skb->data is the IP header
		mov64Reg(r3, r10), add64Imm(r3, -4),
		mov64Imm(r4, 4),
		call(fnSkbLoadBytes),
		jneImm(r0, 0, "failed"),
	}
	p = append(p, ldMapFD(r1, endpoints)...)
	p = append(p,
		mov64Reg(r2, r10), add64Imm(r2, -4),
		call(fnMapLookupElem),
		jeqImm(r0, 0, "nobinding"),
		mov64Reg(r7, r0),
	)
	if mss > 0 {
		p = append(p, mssClamp(mss, 0, counts, "mss_done")...)
	}
	p = append(p,
		at("mss_done", ldxW(r8, r6, 0)), // __sk_buff.len: the inner packet
		// IPv4: version/IHL, TOS, total length; ID 0, no DF (the outer
		// packet may be fragmented, RFC 3519 §4.8); TTL 64, UDP,
		// checksum 0 (the helper computes it); addresses from the map.
		stB(r10, -40, 0x45), stB(r10, -39, 0),
		mov64Reg(r1, r8), add64Imm(r1, utOverhead), toBE16(r1), stxH(r10, r1, -38),
		stW(r10, -36, 0),
		stW(r10, -32, wire32(64, 17, 0, 0)),
		ldxW(r1, r7, 4), stxW(r10, r1, -28), // source: our (virtual) address
		ldxW(r1, r7, 0), stxW(r10, r1, -24), // destination: the NAT's address
		// UDP: 434 → the NAT's port, length, checksum 0 (allowed in IPv4).
		stH(r10, -20, int32(htons(mipPort))),
		ldxH(r1, r7, 8), stxH(r10, r1, -18),
		mov64Reg(r1, r8), add64Imm(r1, utOverhead-20), toBE16(r1), stxH(r10, r1, -16),
		stH(r10, -14, 0),
		// Tunnel data header: type 4, next header 4 (IPv4), reserved.
		stW(r10, -12, wire32(mipTunnel, mipTunnel, 0, 0)),
		mov64Reg(r1, r6), mov64Imm(r2, bpfLWTEncapIP),
		mov64Reg(r3, r10), add64Imm(r3, -40),
		mov64Imm(r4, utOverhead),
		call(fnLWTPushEncap),
		jneImm(r0, 0, "failed"),
		mov64Imm(r8, utEncapSent), mov64Imm(r9, bpfLWTReroute), ja("count"),
	)
	p = append(p, verdict("nobinding", utEncapNoBinding, bpfDrop)...)
	p = append(p, verdict("failed", utEncapFailed, bpfDrop)...)
	return append(p, count(counts)...)
}

// utDecapProgram is the tc ingress program. It reads the first 56 bytes
// from the network header to fp-56…fp-1: outer IPv4 (fp-56), UDP (fp-36),
// tunnel data header (fp-28), inner IPv4 (fp-24: protocol fp-15, source
// fp-12, the map key, destination fp-8) and the first bytes of its payload
// (fp-4: an ICMP type). Anything that is not tunnel data passes untouched
// and uncounted.
//
// A keepalive (RFC 3519: an ICMP echo request the node sends to its
// agent inside the tunnel to hold the NAT mapping open) is tunnel data from
// the binding's mapping whose inner packet is an ICMP echo request (type 8)
// to the endpoint's local address. It is counted as a keepalive, not as
// data, and stripped like data: the inner destination is our own address,
// so the stack delivers it locally (never forwards it) and answers it
// (RFC 1122 §3.2.2.6) from that address to the home address, whose /32
// route is the encapsulating one: the reply leaves as tunnel data from
// port 434 to the NAT mapping, refreshing the mapping in that direction
// too, which is why RFC 3519 makes the keepalive an echo request. The
// local delivery passes rp_filter exactly as forwarded data does (the
// inner source, a home address, routes back out of the uplink through its
// /32), so nothing else is needed: no redirect, no mark. An echo request
// to any other address is data and follows the data rules.
//
// mss > 0 clamps TCP SYNs out of the tunnel to it; base is the uplink's
// link-layer header length (udptun_mss.go), negative when unknown.
func utDecapProgram(endpoints, counts int, mss uint16, base int32) []insn {
	p := []insn{
		mov64Reg(r6, r1),
		ldxW(r1, r6, 16), // __sk_buff.protocol
		jneImm(r1, int32(htons(ethPIP)), "pass"),
	}
	p = append(p, utLoadHeaders(base)...)
	p = append(p,
		jneImm(r0, 0, "pass"),                        // shorter than any tunnel data we forward: not ours
		ldxB(r1, r10, -56), jneImm(r1, 0x45, "pass"), // IPv4 without options
		ldxB(r1, r10, -47), jneImm(r1, 17, "pass"), // UDP
		ldxH(r1, r10, -50), and64Imm(r1, int32(htons(0x3fff))), jneImm(r1, 0, "pass"), // a fragment: the stack reassembles
		ldxH(r1, r10, -34), jneImm(r1, int32(htons(mipPort)), "pass"),
		ldxB(r1, r10, -28), jneImm(r1, mipTunnel, "pass"), // a registration: to the agent
		ldxB(r1, r10, -27), jneImm(r1, mipTunnel, "nexthdr"),
	)
	p = append(p, ldMapFD(r1, endpoints)...)
	p = append(p,
		mov64Reg(r2, r10), add64Imm(r2, -12),
		call(fnMapLookupElem),
		jeqImm(r0, 0, "unknown"),
		ldxW(r1, r0, 0), ldxW(r2, r10, -44), jneReg(r1, r2, "wrongaddr"), // outer source address
		ldxH(r1, r0, 8), ldxH(r2, r10, -36), jneReg(r1, r2, "wrongport"), // outer source port
		// Keepalive: inner ICMP echo request to our (local) address. It
		// is stripped like data and only counted apart (r8 survives the
		// strip and the clamp); the stack delivers it locally.
		mov64Imm(r8, utDecapPassed),
		ldxB(r1, r10, -15), jneImm(r1, 1, "strip"),
		ldxB(r1, r10, -4), jneImm(r1, 8, "strip"),
		ldxW(r1, r0, 4), ldxW(r2, r10, -8), jneReg(r1, r2, "strip"),
		mov64Imm(r8, utDecapKeepalive),
	)
	p = append(p, utStrip(base)...)
	if mss > 0 {
		p = append(p, mssClamp(mss, base, counts, "mss_done")...)
	}
	p = append(p,
		at("mss_done", mov64Imm(r9, tcActOK)), ja("count"),
		at("pass", mov64Imm(r0, tcActOK)), exit(),
	)
	p = append(p, verdict("nexthdr", utDecapNextHdr, tcActShot)...)
	p = append(p, verdict("unknown", utDecapUnknown, tcActShot)...)
	p = append(p, verdict("wrongaddr", utDecapWrongAddr, tcActShot)...)
	p = append(p, verdict("wrongport", utDecapWrongPort, tcActShot)...)
	p = append(p, verdict("failed", utDecapFailed, tcActShot)...)
	return append(p, count(counts)...)
}

// utLoadHeaders copies the first 56 bytes from the network header to
// fp-56 and leaves the helper's result in r0 (0: copied).
//
// Not with bpf_skb_load_bytes_relative alone: it reads only the skb's
// linear part, and a NIC that receives into pages (virtio-net's mergeable
// buffers) hands a full-size frame over with little more than the outer
// IPv4 and UDP headers linear. Every full-size tunnel data packet then
// failed the read, passed untouched to the agent's socket and was lost
// there, while small ones (a ping, a TCP ACK) went through: a TCP
// transfer from the node stalled in the guest and never on the host,
// whose veths hand linear packets over. bpf_skb_load_bytes reads the
// pages too, from skb->data, which at tc ingress is the link-layer header
// of known length base. Where that length is unknown, the first 128 bytes
// (or the whole packet, if shorter) are pulled into the linear part
// first, which costs a copy on every packet of the uplink.
func utLoadHeaders(base int32) []insn {
	if base >= 0 {
		return []insn{
			mov64Reg(r1, r6), mov64Imm(r2, base),
			mov64Reg(r3, r10), add64Imm(r3, -56),
			mov64Imm(r4, 56),
			call(fnSkbLoadBytes),
		}
	}
	return []insn{
		ldxW(r2, r6, 0), // __sk_buff.len
		jleImm(r2, 128, "pull"),
		mov64Imm(r2, 128),
		at("pull", mov64Reg(r1, r6)),
		call(fnSkbPullData),
		jneImm(r0, 0, "pass"),
		mov64Reg(r1, r6), mov64Imm(r2, 0),
		mov64Reg(r3, r10), add64Imm(r3, -56),
		mov64Imm(r4, 56),
		mov64Imm(r5, bpfHdrStartNet),
		call(fnSkbLoadBytesRelative),
	}
}

// utStrip removes the 32 outer bytes of tunnel data at label strip (r6 =
// skb, the inner IPv4 header's first word at fp-24) and falls through.
//
// A packet whose outer UDP checksum its sender left to offload arrives
// CHECKSUM_PARTIAL (a virtio NIC hands them over so, from a VM or a
// container on the same host), csum_start on the outer UDP header. The
// kernel drops that state when a pull passes csum_start, but
// bpf_skb_adjust_room pulls from the MAC header and then moves the MAC
// header forward: after a 32-byte strip csum_start points 2 bytes into
// the new MAC header, the forwarded packet is still "partial" there, and
// the next virtio or tap device refuses it (a real NIC would write a
// checksum into the source MAC). So, when the link-layer header length is
// known, strip 36 bytes (past csum_start: the kernel resets the state to
// CHECKSUM_NONE, right, as the inner packet's checksums are the sender's
// own) and put the inner header's first word back.
func utStrip(base int32) []insn {
	if base < 0 {
		return []insn{
			at("strip", mov64Reg(r1, r6)), mov64Imm(r2, -utOverhead), mov64Imm(r3, bpfAdjRoomMAC), mov64Imm(r4, 0),
			call(fnSkbAdjustRoom),
			jneImm(r0, 0, "failed"),
		}
	}
	return []insn{
		at("strip", mov64Reg(r1, r6)), mov64Imm(r2, -(utOverhead + 4)), mov64Imm(r3, bpfAdjRoomMAC), mov64Imm(r4, 0),
		call(fnSkbAdjustRoom),
		jneImm(r0, 0, "failed"),
		mov64Reg(r1, r6), mov64Imm(r2, 4), mov64Imm(r3, bpfAdjRoomMAC), mov64Imm(r4, 0),
		call(fnSkbAdjustRoom),
		jneImm(r0, 0, "failed"), // the inner header lost its first word: drop it
		mov64Reg(r1, r6), mov64Imm(r2, base), mov64Reg(r3, r10), add64Imm(r3, -24), mov64Imm(r4, 4),
		mov64Imm(r5, bpfFRecomputeCsum), // CHECKSUM_COMPLETE follows the write
		call(fnSkbStoreBytes),
		jneImm(r0, 0, "failed"),
	}
}
