// Package ebpf is the little of eBPF the agent uses, by hand: an
// instruction encoder with labels (asm.go), a BTF builder (btf.go), the
// bpf(2) commands for maps, programs and BTF (sys_linux.go) and a ring
// buffer read through the runtime's poller (ringbuf_linux.go). It loads
// no object files and needs no new module: golang.org/x/sys/unix has the
// constants, the attribute layouts are written here.
package ebpf

import (
	"encoding/binary"
	"fmt"
)

// Insn is one eBPF instruction (struct bpf_insn). Regs holds the two
// 4-bit register fields in the machine's bitfield order (Asm packs them).
type Insn struct {
	Op   uint8
	Regs uint8
	Off  int16
	Imm  int32
}

// Registers.
const (
	R0 uint8 = iota
	R1
	R2
	R3
	R4
	R5
	R6
	R7
	R8
	R9
	R10 // the frame pointer (read-only)
)

// Opcode pieces (linux/bpf_common.h, linux/bpf.h).
const (
	ClassLD    = 0x00
	ClassLDX   = 0x01
	ClassST    = 0x02
	ClassSTX   = 0x03
	ClassALU   = 0x04
	ClassJMP   = 0x05
	ClassJMP32 = 0x06
	ClassALU64 = 0x07

	SizeW  = 0x00
	SizeH  = 0x08
	SizeB  = 0x10
	SizeDW = 0x18

	modeIMM    = 0x00
	modeMEM    = 0x60
	modeATOMIC = 0xc0

	srcK = 0x00
	srcX = 0x08

	aluADD = 0x00
	aluMOV = 0xb0

	JA   = 0x00
	JEQ  = 0x10
	JNE  = 0x50
	call = 0x80
	exit = 0x90
)

// Pseudo sources of the 64-bit immediate load (linux/bpf.h).
const (
	pseudoMapFD = 1 // BPF_PSEUDO_MAP_FD: imm is a map's descriptor
	pseudoFunc  = 4 // BPF_PSEUDO_FUNC: imm is a subprogram's offset
)

// Helper functions used here (enum bpf_func_id, linux/bpf.h; x/sys does
// not list them). Their numbers never change.
const (
	FuncMapLookupElem    = 1
	FuncKtimeGetNs       = 5
	FuncSkbLoadBytes     = 26
	FuncRingbufOutput    = 130
	FuncTimerInit        = 169
	FuncTimerSetCallback = 170
	FuncTimerStart       = 171
)

// littleEndian: struct bpf_insn's dst_reg:4, src_reg:4 put dst in the low
// nibble on little-endian machines, in the high one on big-endian ones.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func regs(dst, src uint8) uint8 {
	if littleEndian {
		return src<<4 | dst&0x0f
	}
	return dst<<4 | src&0x0f
}

// Dst and Src are the instruction's registers.
func (i Insn) Dst() uint8 {
	if littleEndian {
		return i.Regs & 0x0f
	}
	return i.Regs >> 4
}

// Src is the instruction's source register.
func (i Insn) Src() uint8 {
	if littleEndian {
		return i.Regs >> 4
	}
	return i.Regs & 0x0f
}

// Asm assembles a program: instructions appended in order, jumps to named
// labels resolved by Program. Not for a hot path: it allocates.
type Asm struct {
	insns  []Insn
	labels map[string]int
	fixups []fixup
}

type fixup struct {
	at    int
	label string
	imm   bool // the target goes in Imm (a pseudo-function load), else Off
}

// Len is the number of instruction slots so far (a 64-bit load takes two).
func (a *Asm) Len() int { return len(a.insns) }

func (a *Asm) add(op, dst, src uint8, off int16, imm int32) *Asm {
	a.insns = append(a.insns, Insn{Op: op, Regs: regs(dst, src), Off: off, Imm: imm})
	return a
}

// Label names the next instruction.
func (a *Asm) Label(name string) *Asm {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.insns)
	return a
}

// Mov64Imm: dst = imm (sign-extended).
func (a *Asm) Mov64Imm(dst uint8, imm int32) *Asm {
	return a.add(ClassALU64|aluMOV|srcK, dst, 0, 0, imm)
}

// Mov64Reg: dst = src.
func (a *Asm) Mov64Reg(dst, src uint8) *Asm { return a.add(ClassALU64|aluMOV|srcX, dst, src, 0, 0) }

// Add64Imm: dst += imm.
func (a *Asm) Add64Imm(dst uint8, imm int32) *Asm {
	return a.add(ClassALU64|aluADD|srcK, dst, 0, 0, imm)
}

// LoadMem: dst = *(size *)(src + off).
func (a *Asm) LoadMem(size, dst, src uint8, off int16) *Asm {
	return a.add(ClassLDX|modeMEM|size, dst, src, off, 0)
}

// StoreMem: *(size *)(dst + off) = src.
func (a *Asm) StoreMem(size, dst, src uint8, off int16) *Asm {
	return a.add(ClassSTX|modeMEM|size, dst, src, off, 0)
}

// StoreImm: *(size *)(dst + off) = imm.
func (a *Asm) StoreImm(size, dst uint8, off int16, imm int32) *Asm {
	return a.add(ClassST|modeMEM|size, dst, 0, off, imm)
}

// AtomicAdd64: *(u64 *)(dst + off) += src, atomically.
func (a *Asm) AtomicAdd64(dst, src uint8, off int16) *Asm {
	return a.add(ClassSTX|modeATOMIC|SizeDW, dst, src, off, aluADD)
}

// LoadImm64: dst = v (two slots).
func (a *Asm) LoadImm64(dst uint8, v uint64) *Asm {
	a.add(ClassLD|modeIMM|SizeDW, dst, 0, 0, int32(uint32(v)))
	return a.add(0, 0, 0, 0, int32(uint32(v>>32)))
}

// LoadMapFD: dst = the map whose descriptor is fd (two slots).
func (a *Asm) LoadMapFD(dst uint8, fd int) *Asm {
	a.add(ClassLD|modeIMM|SizeDW, dst, pseudoMapFD, 0, int32(fd))
	return a.add(0, 0, 0, 0, 0)
}

// LoadFunc: dst = the subprogram at label (two slots), for a helper that
// takes a callback.
func (a *Asm) LoadFunc(dst uint8, label string) *Asm {
	a.fixups = append(a.fixups, fixup{at: len(a.insns), label: label, imm: true})
	a.add(ClassLD|modeIMM|SizeDW, dst, pseudoFunc, 0, 0)
	return a.add(0, 0, 0, 0, 0)
}

// JumpImm: if dst op imm goto label (64-bit compare; class ClassJMP32
// compares the low 32 bits).
func (a *Asm) JumpImm(class, op, dst uint8, imm int32, label string) *Asm {
	a.fixups = append(a.fixups, fixup{at: len(a.insns), label: label})
	return a.add(class|op|srcK, dst, 0, 0, imm)
}

// Jump: goto label.
func (a *Asm) Jump(label string) *Asm {
	a.fixups = append(a.fixups, fixup{at: len(a.insns), label: label})
	return a.add(ClassJMP|JA, 0, 0, 0, 0)
}

// Call calls helper function fn.
func (a *Asm) Call(fn int32) *Asm { return a.add(ClassJMP|call, 0, 0, 0, fn) }

// Exit returns R0.
func (a *Asm) Exit() *Asm { return a.add(ClassJMP|exit, 0, 0, 0, 0) }

// Program resolves the labels and returns the instructions.
func (a *Asm) Program() ([]Insn, error) {
	for _, f := range a.fixups {
		to, ok := a.labels[f.label]
		if !ok {
			return nil, fmt.Errorf("ebpf: jump to undefined label %q", f.label)
		}
		rel := to - (f.at + 1)
		if f.imm {
			a.insns[f.at].Imm = int32(rel)
			continue
		}
		if rel < -1<<15 || rel >= 1<<15 {
			return nil, fmt.Errorf("ebpf: jump to %q out of range (%d)", f.label, rel)
		}
		a.insns[f.at].Off = int16(rel)
	}
	return a.insns, nil
}
