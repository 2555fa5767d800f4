//go:build linux

package groupio

import (
	"encoding/binary"
	"net"
	"os"
	"unsafe"
)

func unsafe_Pointer(p *byte) unsafe.Pointer { return unsafe.Pointer(p) }

func nativePut32(b []byte, v uint32) { binary.NativeEndian.PutUint32(b, v) }

func interfaceIndex(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return ifi.Index, nil
}

func readlink(p string) (string, error) { return os.Readlink(p) }

func unsafePointerOf(p *uint16) *byte { return (*byte)(unsafe.Pointer(p)) }
