package vrrp

import "encoding/binary"

// A backup's lazy reading rests on two classic BPF programs (SO_ATTACH_FILTER:
// no eBPF, no maps, no capability beyond the raw socket's), one per socket,
// built from the last advertisement the backup accepted from the master it
// follows (the template). While that master is alive and unchanged, every
// advertisement it sends is byte for byte the template, apart from the IP
// identification and header checksum, and would only move the
// Master_Down_Timer: those go to a socket that wakes nobody (Match), read
// when the runner is awake anyway and before the timer is acted on; every
// other packet goes to the polled socket (Mismatch) and is handled at once.
//
// The program runs on the IP packet (a raw IPv4 socket's filter starts at
// the IP header). It compares the packet's length, version and header
// length (no options), total length, TTL and protocol, source, destination
// and every byte after the header; not the TOS, identification, fragment
// field or header checksum, which may change per packet.

// Insn is one classic BPF instruction (struct sock_filter).
type Insn struct {
	Op     uint16
	Jt, Jf uint8
	K      uint32
}

// Classic BPF opcodes (linux/filter.h).
const (
	bpfLdW   = 0x20 // BPF_LD | BPF_W | BPF_ABS
	bpfLdH   = 0x28 // BPF_LD | BPF_H | BPF_ABS
	bpfLdB   = 0x30 // BPF_LD | BPF_B | BPF_ABS
	bpfLdLen = 0x80 // BPF_LD | BPF_W | BPF_LEN
	bpfJeqK  = 0x15 // BPF_JMP | BPF_JEQ | BPF_K
	bpfRetK  = 0x06 // BPF_RET | BPF_K
)

// Verdicts: the bytes of the packet to keep (all of an IPv4 packet), or none.
const (
	bpfAccept = 0xffff
	bpfReject = 0
)

// MaxTemplate bounds a template: an IPv4 header without options and an
// advertisement with MaxAddrs addresses. A longer advertisement makes no
// template (every packet is read at once, as without lazy reading).
const MaxTemplate = 20 + HeaderLen + 4*MaxAddrs

// MaxFilter bounds a template program's length (AppendFilter).
const MaxFilter = 2*(6+(MaxTemplate-20+3)/4) + 2

// TemplateOK reports whether pkt, an IPv4 packet that carried a valid
// advertisement, can be a template: no IP options, total length equal to
// the packet's, at most MaxTemplate bytes.
func TemplateOK(pkt []byte) bool {
	return len(pkt) >= 20+HeaderLen && len(pkt) <= MaxTemplate && pkt[0] == 0x45 &&
		int(binary.BigEndian.Uint16(pkt[2:])) == len(pkt)
}

// AppendFilter appends the program that, for a packet equal to tmpl in the
// fields the lazy socket compares, returns accept if match is true and
// reject otherwise, and the opposite for any other packet: match true is
// the lazy socket's program, false the polled socket's. tmpl must pass
// TemplateOK; nil (no template) is the program that accepts everything
// (match false) or nothing (match true). Allocates nothing when prog has
// room for MaxFilter instructions.
func AppendFilter(prog []Insn, tmpl []byte, match bool) []Insn {
	if tmpl == nil {
		if match {
			return append(prog, Insn{Op: bpfRetK, K: bpfReject})
		}
		return append(prog, Insn{Op: bpfRetK, K: bpfAccept})
	}
	n := len(tmpl)
	// Every check is a load and a jump to the mismatch verdict, the last
	// instruction. The length is checked first: a load past the end of a
	// shorter packet would end the program with reject, which the polled
	// socket must never do.
	checks := 6 + (n-20+3)/4
	total := 2*checks + 2
	start := len(prog)
	check := func(op uint16, off int, k uint32) {
		at := len(prog) - start + 1 // the jump's index
		prog = append(prog, Insn{Op: op, K: uint32(off)},
			Insn{Op: bpfJeqK, Jf: uint8(total - 1 - (at + 1)), K: k})
	}
	check(bpfLdLen, 0, uint32(n))
	check(bpfLdB, 0, uint32(tmpl[0]))
	check(bpfLdH, 2, uint32(binary.BigEndian.Uint16(tmpl[2:])))
	check(bpfLdH, 8, uint32(binary.BigEndian.Uint16(tmpl[8:])))
	check(bpfLdW, 12, binary.BigEndian.Uint32(tmpl[12:]))
	check(bpfLdW, 16, binary.BigEndian.Uint32(tmpl[16:]))
	off := 20
	for ; off+4 <= n; off += 4 {
		check(bpfLdW, off, binary.BigEndian.Uint32(tmpl[off:]))
	}
	switch n - off {
	case 3: // the last four bytes as one word (its first was compared already)
		check(bpfLdW, n-4, binary.BigEndian.Uint32(tmpl[n-4:]))
	case 2:
		check(bpfLdH, off, uint32(binary.BigEndian.Uint16(tmpl[off:])))
	case 1:
		check(bpfLdB, off, uint32(tmpl[off]))
	}
	yes, no := uint32(bpfAccept), uint32(bpfReject)
	if !match {
		yes, no = no, yes
	}
	return append(prog, Insn{Op: bpfRetK, K: yes}, Insn{Op: bpfRetK, K: no})
}
