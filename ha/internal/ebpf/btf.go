package ebpf

import "encoding/binary"

// A map value holding a struct bpf_timer needs BTF, the kernel's type
// description, to say where the timer is; a program whose helper takes a
// callback needs it to say that the callback is a static function
// (func_info). The types are few and fixed, so the blob is written here
// instead of compiled (linux/btf.h, Documentation/bpf/btf.rst).

// TypeID is a BTF type's number (0 is void; the first added is 1).
type TypeID uint32

// BTF kinds (linux/btf.h).
const (
	kindInt       = 1
	kindArray     = 3
	kindStruct    = 4
	kindFunc      = 12
	kindFuncProto = 13
)

// Linkage of a BTF function.
type Linkage uint16

const (
	// Static: a subprogram only its program calls (a callback must be).
	Static Linkage = 0
	// Global: verified on its own, against its BTF prototype.
	Global Linkage = 1
)

const (
	btfMagic   = 0xeb9f
	btfHdrLen  = 24
	intSigned  = 1 << 0 // BTF_INT_SIGNED
	btfVersion = 1
)

// BTF builds a BTF blob: types, then their names.
type BTF struct {
	order binary.AppendByteOrder
	types []byte
	strs  []byte
	n     TypeID
}

// NewBTF starts a blob in byte order (the machine's: binary.NativeEndian).
func NewBTF(order binary.AppendByteOrder) *BTF {
	return &BTF{order: order, strs: []byte{0}}
}

func (b *BTF) str(s string) uint32 {
	if s == "" {
		return 0
	}
	off := uint32(len(b.strs))
	b.strs = append(append(b.strs, s...), 0)
	return off
}

func (b *BTF) u32(v ...uint32) {
	for _, x := range v {
		b.types = b.order.AppendUint32(b.types, x)
	}
}

// typ appends struct btf_type: name, info (vlen, kind, kind_flag), size or type.
func (b *BTF) typ(name string, kind uint32, vlen uint32, sizeOrType uint32) TypeID {
	b.u32(b.str(name), kind<<24|vlen&0xffff, sizeOrType)
	b.n++
	return b.n
}

// Int adds an integer of size bytes.
func (b *BTF) Int(name string, size uint32, signed bool) TypeID {
	id := b.typ(name, kindInt, 0, size)
	enc := uint32(0)
	if signed {
		enc = intSigned
	}
	b.u32(enc<<24 | size*8) // encoding, offset 0, bits
	return id
}

// Array adds elem[n], indexed by index (an integer type).
func (b *BTF) Array(elem, index TypeID, n uint32) TypeID {
	id := b.typ("", kindArray, 0, 0)
	b.u32(uint32(elem), uint32(index), n)
	return id
}

// Member is a struct's field at BitOff bits from its start.
type Member struct {
	Name   string
	Type   TypeID
	BitOff uint32
}

// Struct adds a struct of size bytes.
func (b *BTF) Struct(name string, size uint32, members ...Member) TypeID {
	id := b.typ(name, kindStruct, uint32(len(members)), size)
	for _, m := range members {
		b.u32(b.str(m.Name), uint32(m.Type), m.BitOff)
	}
	return id
}

// FuncProto adds a function type returning ret with unnamed parameters.
func (b *BTF) FuncProto(ret TypeID, params ...TypeID) TypeID {
	id := b.typ("", kindFuncProto, uint32(len(params)), uint32(ret))
	for _, p := range params {
		b.u32(0, uint32(p))
	}
	return id
}

// Func adds a function of type proto.
func (b *BTF) Func(name string, proto TypeID, l Linkage) TypeID {
	return b.typ(name, kindFunc, uint32(l), uint32(proto))
}

// Bytes returns the blob: header, type section, string section.
func (b *BTF) Bytes() []byte {
	out := b.order.AppendUint16(nil, btfMagic)
	out = append(out, btfVersion, 0)
	for _, v := range []uint32{btfHdrLen, 0, uint32(len(b.types)), uint32(len(b.types)), uint32(len(b.strs))} {
		out = b.order.AppendUint32(out, v)
	}
	return append(append(out, b.types...), b.strs...)
}

// FuncInfo is struct bpf_func_info: the function type of the subprogram
// that starts at instruction InsnOff.
type FuncInfo struct {
	InsnOff uint32
	TypeID  TypeID
}
