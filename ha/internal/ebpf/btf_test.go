package ebpf

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// timerBTF is the shape a map value with a bpf_timer needs, and two
// functions: the types the VRRP backup's program uses.
func timerBTF(order binary.AppendByteOrder) (*BTF, TypeID, TypeID, TypeID, TypeID) {
	b := NewBTF(order)
	i32 := b.Int("int", 4, true)
	u32 := b.Int("__u32", 4, false)
	u64 := b.Int("__u64", 8, false)
	arr := b.Array(u64, u32, 2)
	timer := b.Struct("bpf_timer", 16, Member{"__opaque", arr, 0})
	val := b.Struct("state", 32, Member{"t", timer, 0}, Member{"newest_ns", u64, 128}, Member{"count", u64, 192})
	proto := b.FuncProto(i32)
	main := b.Func("main", proto, Global)
	cb := b.Func("cb", proto, Static)
	return b, u32, val, main, cb
}

// The blob, word by word (little-endian), as linux/btf.h lays it out.
func TestBTFGolden(t *testing.T) {
	b, u32, val, main, cb := timerBTF(binary.LittleEndian)
	if u32 != 2 || val != 6 || main != 8 || cb != 9 {
		t.Fatalf("type ids u32=%d val=%d main=%d cb=%d, want 2 6 8 9", u32, val, main, cb)
	}
	strs := "\x00int\x00__u32\x00__u64\x00bpf_timer\x00__opaque\x00state\x00t\x00newest_ns\x00count\x00main\x00cb\x00"
	off := func(s string) uint32 { return uint32(bytes.Index([]byte(strs), []byte("\x00"+s+"\x00")) + 1) }
	words := []uint32{
		off("int"), 1 << 24, 4, 1<<24 | 32, // INT int, signed, 32 bits
		off("__u32"), 1 << 24, 4, 32,
		off("__u64"), 1 << 24, 8, 64,
		0, 3 << 24, 0, 3, 2, 2, // ARRAY __u64[2] indexed by __u32
		off("bpf_timer"), 4<<24 | 1, 16, off("__opaque"), 4, 0,
		off("state"), 4<<24 | 3, 32, off("t"), 5, 0, off("newest_ns"), 3, 128, off("count"), 3, 192,
		0, 13 << 24, 1, // FUNC_PROTO returning int, no parameters
		off("main"), 12<<24 | 1, 7, // FUNC, global
		off("cb"), 12 << 24, 7, // FUNC, static
	}
	var want []byte
	want = binary.LittleEndian.AppendUint16(want, 0xeb9f)
	want = append(want, 1, 0)
	for _, v := range []uint32{24, 0, uint32(4 * len(words)), uint32(4 * len(words)), uint32(len(strs))} {
		want = binary.LittleEndian.AppendUint32(want, v)
	}
	for _, w := range words {
		want = binary.LittleEndian.AppendUint32(want, w)
	}
	want = append(want, strs...)
	if got := b.Bytes(); !bytes.Equal(got, want) {
		t.Errorf("BTF blob\n got %x\nwant %x", got, want)
	}
}

func TestAsmLabels(t *testing.T) {
	var a Asm
	a.JumpImm(ClassJMP, JEQ, R1, 7, "out").LoadFunc(R2, "f").Mov64Imm(R0, 1).Label("out").Exit().Label("f").Exit()
	p, err := a.Program()
	if err != nil {
		t.Fatal(err)
	}
	if p[0].Off != 3 || p[0].Dst() != R1 || p[0].Imm != 7 {
		t.Errorf("jump: %+v, want off 3 to the exit", p[0])
	}
	if p[1].Imm != 3 || p[1].Src() != pseudoFunc || p[1].Dst() != R2 {
		t.Errorf("function load: %+v, want imm 3 (the second exit), src %d", p[1], pseudoFunc)
	}
	var bad Asm
	if _, err := bad.Jump("nowhere").Program(); err == nil {
		t.Error("a jump to an undefined label assembled")
	}
}
