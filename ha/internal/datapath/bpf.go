package datapath

// bpf(2) without a loader library: the reverse-tunnel check (revcheck.go)
// needs two maps and one 50-instruction tc program, which is less code to
// assemble by hand than a dependency is to vet, ship on four architectures
// and keep current. Everything here is native-endian, like the kernel's own
// structures (struct bpf_insn's register nibbles included).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// bpf(2) commands, map and program types (include/uapi/linux/bpf.h).
const (
	bpfMapCreate  = 0
	bpfMapLookup  = 1
	bpfMapUpdate  = 2
	bpfMapDelete  = 3
	bpfMapNextKey = 4
	bpfProgLoad   = 5

	bpfMapLookupBatch = 24 // Linux 5.6

	bpfMapTypeHash        = 1
	bpfMapTypePercpuArray = 6
	bpfProgTypeSchedCls   = 3

	bpfPseudoMapFD = 1 // src_reg of a ld_imm64 that carries a map fd

	// helpers
	fnMapLookupElem        = 1
	fnSkbGetTunnelKey      = 20
	fnSkbLoadBytesRelative = 68

	bpfHdrStartNet = 1 // bpf_skb_load_bytes_relative: offset from the network header

	tcActOK   = 0
	tcActShot = 2
)

// Instruction classes, sizes, modes and operations.
const (
	bpfLD    = 0x00
	bpfLDX   = 0x01
	bpfSTX   = 0x03
	bpfJMP   = 0x05
	bpfALU64 = 0x07

	bpfW  = 0x00
	bpfDW = 0x18

	bpfIMM = 0x00
	bpfMEM = 0x60

	bpfK = 0x00
	bpfX = 0x08

	bpfADD = 0x00
	bpfMOV = 0xb0

	bpfJA   = 0x00
	bpfJEQ  = 0x10
	bpfJNE  = 0x50
	bpfCALL = 0x80
	bpfEXIT = 0x90
)

// Registers: r0 return value, r1–r5 arguments (clobbered by calls), r6–r9
// callee-saved, r10 the read-only frame pointer.
const (
	r0 = iota
	r1
	r2
	r3
	r4
	r5
	r6
	r7
	r8
	r9
	r10
)

// insn is one struct bpf_insn; jump targets are labels until assemble.
type insn struct {
	code     uint8
	dst, src uint8
	off      int16
	imm      int32
	target   string // jump: label to resolve into off
	label    string // this instruction's label
}

func mov64Reg(dst, src uint8) insn { return insn{code: bpfALU64 | bpfMOV | bpfX, dst: dst, src: src} }
func mov64Imm(dst uint8, imm int32) insn {
	return insn{code: bpfALU64 | bpfMOV | bpfK, dst: dst, imm: imm}
}
func add64Imm(dst uint8, imm int32) insn {
	return insn{code: bpfALU64 | bpfADD | bpfK, dst: dst, imm: imm}
}
func ldxW(dst, src uint8, off int16) insn {
	return insn{code: bpfLDX | bpfMEM | bpfW, dst: dst, src: src, off: off}
}
func ldxDW(dst, src uint8, off int16) insn {
	return insn{code: bpfLDX | bpfMEM | bpfDW, dst: dst, src: src, off: off}
}
func stxW(dst, src uint8, off int16) insn {
	return insn{code: bpfSTX | bpfMEM | bpfW, dst: dst, src: src, off: off}
}
func stxDW(dst, src uint8, off int16) insn {
	return insn{code: bpfSTX | bpfMEM | bpfDW, dst: dst, src: src, off: off}
}
func call(fn int32) insn { return insn{code: bpfJMP | bpfCALL, imm: fn} }
func exit() insn         { return insn{code: bpfJMP | bpfEXIT} }
func ja(to string) insn  { return insn{code: bpfJMP | bpfJA, target: to} }
func jeqImm(dst uint8, imm int32, to string) insn {
	return insn{code: bpfJMP | bpfJEQ | bpfK, dst: dst, imm: imm, target: to}
}
func jneImm(dst uint8, imm int32, to string) insn {
	return insn{code: bpfJMP | bpfJNE | bpfK, dst: dst, imm: imm, target: to}
}
func jneReg(dst, src uint8, to string) insn {
	return insn{code: bpfJMP | bpfJNE | bpfX, dst: dst, src: src, target: to}
}

// ldMapFD is the two-slot ld_imm64 whose immediate the kernel replaces by
// the map's address.
func ldMapFD(dst uint8, fd int) []insn {
	return []insn{{code: bpfLD | bpfDW | bpfIMM, dst: dst, src: bpfPseudoMapFD, imm: int32(fd)}, {}}
}

func at(label string, in insn) insn { in.label = label; return in }

// nativeLE: struct bpf_insn's "dst_reg:4, src_reg:4" bitfield puts dst in
// the low nibble on little-endian machines and in the high one on
// big-endian machines (bitfields are allocated from the low-order end on
// LE ABIs and from the high-order end on BE ones).
var nativeLE = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// assemble resolves labels and encodes the program.
func assemble(prog []insn) ([]byte, error) {
	labels := map[string]int{}
	for i, in := range prog {
		if in.label != "" {
			if _, dup := labels[in.label]; dup {
				return nil, fmt.Errorf("bpf: label %q defined twice", in.label)
			}
			labels[in.label] = i
		}
	}
	out := make([]byte, 8*len(prog))
	for i, in := range prog {
		if in.target != "" {
			t, ok := labels[in.target]
			if !ok {
				return nil, fmt.Errorf("bpf: jump at %d to unknown label %q", i, in.target)
			}
			in.off = int16(t - (i + 1))
		}
		b := out[8*i:]
		b[0] = in.code
		if nativeLE {
			b[1] = in.dst&0xf | in.src<<4
		} else {
			b[1] = in.dst<<4 | in.src&0xf
		}
		binary.NativeEndian.PutUint16(b[2:], uint16(in.off))
		binary.NativeEndian.PutUint32(b[4:], uint32(in.imm))
	}
	return out, nil
}

// htons is a 16-bit value as the kernel stores a __be16, read back as a
// native integer (what __sk_buff.protocol holds).
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// ---- the syscall ----

func bpfCall(cmd uintptr, attr []byte) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, cmd, uintptr(unsafe.Pointer(&attr[0])), uintptr(len(attr)))
	runtime.KeepAlive(attr)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// ptr is a buffer's address for a bpf_attr field. The buffer must live on
// the heap (heapBytes, or a field of a heap object): a goroutine's stack
// moves when it grows, which would leave the address stored in the attr
// stale; heap objects do not move.
func ptr(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }

// heapBytes returns a zeroed buffer that is certainly on the heap: a slice
// returned from a function that is not inlined escapes.
//
//go:noinline
func heapBytes(n int) []byte { return make([]byte, n) }

// bpfObjName fills a 16-byte object name (map_name, prog_name).
func bpfObjName(b []byte, name string) { copy(b[:15], name) }

// mapCreate makes a map; the attr layout is union bpf_attr's BPF_MAP_CREATE
// struct up to map_name.
func mapCreate(typ, key, value, max uint32, name string) (int, error) {
	attr := heapBytes(44)
	ne := binary.NativeEndian
	ne.PutUint32(attr[0:], typ)
	ne.PutUint32(attr[4:], key)
	ne.PutUint32(attr[8:], value)
	ne.PutUint32(attr[12:], max)
	bpfObjName(attr[28:44], name)
	fd, err := bpfCall(bpfMapCreate, attr)
	if errors.Is(err, unix.EPERM) {
		// Kernels before 5.11 charge maps to RLIMIT_MEMLOCK (64 KiB by
		// default): lift it and try once more.
		if unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}) == nil {
			fd, err = bpfCall(bpfMapCreate, attr)
		}
	}
	return fd, err
}

// elemAttr is the BPF_MAP_*_ELEM attr: map_fd, pad, key, value/next_key, flags.
type elemAttr struct{ b [32]byte }

func (a *elemAttr) op(cmd uintptr, fd int, key, value []byte) error {
	ne := binary.NativeEndian
	clear(a.b[:])
	ne.PutUint32(a.b[0:], uint32(fd))
	ne.PutUint64(a.b[8:], ptr(key))
	if value != nil {
		ne.PutUint64(a.b[16:], ptr(value))
	}
	_, err := bpfCall(cmd, a.b[:])
	runtime.KeepAlive(key)
	runtime.KeepAlive(value)
	return err
}

// progLoad loads a program; on a verifier refusal it loads again with the
// log on and returns the log's tail in the error (what an operator on a
// different kernel needs to report).
func progLoad(typ uint32, code []byte, license, name string) (int, error) {
	lic := heapBytes(len(license) + 1)
	copy(lic, license)
	attr := heapBytes(72)
	ne := binary.NativeEndian
	ne.PutUint32(attr[0:], typ)
	ne.PutUint32(attr[4:], uint32(len(code)/8))
	ne.PutUint64(attr[8:], ptr(code))
	ne.PutUint64(attr[16:], ptr(lic))
	bpfObjName(attr[48:64], name)
	fd, err := bpfCall(bpfProgLoad, attr)
	if err == nil || !(errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EACCES)) {
		runtime.KeepAlive(code)
		runtime.KeepAlive(lic)
		return fd, err
	}
	log := heapBytes(256 << 10)
	ne.PutUint32(attr[24:], 1)
	ne.PutUint32(attr[28:], uint32(len(log)))
	ne.PutUint64(attr[32:], ptr(log))
	fd, err2 := bpfCall(bpfProgLoad, attr)
	runtime.KeepAlive(code)
	runtime.KeepAlive(lic)
	if err2 == nil {
		return fd, nil // refused once, accepted with the log on: take it
	}
	msg := strings.TrimSpace(string(log[:max(0, strings.IndexByte(string(log), 0))]))
	if lines := strings.Split(msg, "\n"); len(lines) > 6 {
		msg = strings.Join(lines[len(lines)-6:], "\n")
	}
	return -1, fmt.Errorf("%w (verifier: %s)", err, msg)
}

// possibleCPUs is how many values a per-CPU map lookup returns: the
// kernel's num_possible_cpus(), i.e. the highest CPU in
// /sys/devices/system/cpu/possible plus one.
func possibleCPUs() (int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return 0, fmt.Errorf("reading the possible CPUs: %w", err)
	}
	return parseCPUList(strings.TrimSpace(string(b)))
}

// parseCPUList reads "0", "0-3", "0-1,4-7" and returns the highest plus one.
func parseCPUList(s string) (int, error) {
	n := 0
	for _, part := range strings.Split(s, ",") {
		hi := part
		if i := strings.IndexByte(part, '-'); i >= 0 {
			hi = part[i+1:]
		}
		v, err := strconv.Atoi(hi)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("cpu list %q: not understood", s)
		}
		n = max(n, v+1)
	}
	return n, nil
}
