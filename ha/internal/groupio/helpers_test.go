//go:build linux

package groupio

import (
	"encoding/binary"
	"unsafe"
)

func unsafe_Pointer(p *byte) unsafe.Pointer { return unsafe.Pointer(p) }

func nativePut32(b []byte, v uint32) { binary.NativeEndian.PutUint32(b, v) }
