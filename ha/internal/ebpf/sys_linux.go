package ebpf

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The bpf(2) attribute layouts used here (union bpf_attr, linux/bpf.h),
// each the prefix of its command's part that this package sets: the kernel
// takes a shorter attribute and zeroes the rest. Pointers travel as u64.

type mapCreateAttr struct {
	mapType, keySize, valueSize, maxEntries, mapFlags, innerMapFD, numaNode uint32
	mapName                                                                 [unix.BPF_OBJ_NAME_LEN]byte
	mapIfindex, btfFD, btfKeyTypeID, btfValueTypeID                         uint32
}

type mapElemAttr struct {
	mapFD uint32
	_     uint32
	key   uint64
	value uint64
	flags uint64
}

type progLoadAttr struct {
	progType, insnCnt               uint32
	insns, license                  uint64
	logLevel, logSize               uint32
	logBuf                          uint64
	kernVersion, progFlags          uint32
	progName                        [unix.BPF_OBJ_NAME_LEN]byte
	progIfindex, expectedAttachType uint32
	progBTFFD, funcInfoRecSize      uint32
	funcInfo                        uint64
	funcInfoCnt, lineInfoRecSize    uint32
	lineInfo                        uint64
	lineInfoCnt, attachBTFID        uint32
}

type btfLoadAttr struct {
	btf, logBuf             uint64
	size, logSize, logLevel uint32
}

func ptr[T any](p *T) uint64 { return uint64(uintptr(unsafe.Pointer(p))) }

func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	for try := 1; ; try++ {
		r, _, e := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
		if (e == unix.EINTR || e == unix.EAGAIN && cmd == unix.BPF_PROG_LOAD) && try < 5 {
			continue // a verifier interrupted by a signal starts over (as libbpf, a few times)
		}
		if e != 0 {
			return -1, e
		}
		return int(r), nil
	}
}

// bpfRaw is bpf for the commands that never block (an array or ring
// map's element): without the scheduler's system-call bookkeeping, which
// wakes the runtime's monitor thread (sysmon) from its idle sleep at the
// first system call after it.
func bpfRaw(cmd int, attr unsafe.Pointer, size uintptr) error {
	_, _, e := unix.RawSyscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if e != 0 {
		return e
	}
	return nil
}

func name(s string) (n [unix.BPF_OBJ_NAME_LEN]byte) {
	copy(n[:len(n)-1], s)
	return n
}

// MapSpec describes a map to create.
type MapSpec struct {
	Name                        string // up to 15 characters
	Type                        uint32 // unix.BPF_MAP_TYPE_*
	KeySize, ValueSize, Entries uint32
	Flags                       uint32
	BTF                         int    // the BTF's descriptor (LoadBTF), for a value with special fields
	KeyType, ValueType          TypeID // in BTF
}

// CreateMap creates a map and returns its descriptor (close-on-exec).
func CreateMap(s MapSpec) (int, error) {
	a := mapCreateAttr{mapType: s.Type, keySize: s.KeySize, valueSize: s.ValueSize, maxEntries: s.Entries,
		mapFlags: s.Flags, mapName: name(s.Name)}
	if s.BTF > 0 {
		a.btfFD, a.btfKeyTypeID, a.btfValueTypeID = uint32(s.BTF), uint32(s.KeyType), uint32(s.ValueType)
	}
	fd, err := bpf(unix.BPF_MAP_CREATE, unsafe.Pointer(&a), unsafe.Sizeof(a))
	if err != nil {
		return -1, fmt.Errorf("ebpf: creating map %q (BPF_MAP_CREATE): %w", s.Name, err)
	}
	return fd, nil
}

// Lookup copies the value of key into value (BPF_MAP_LOOKUP_ELEM; both
// sized as the map says), for a map whose lookup never blocks (array,
// hash). Allocates nothing.
func Lookup(fd int, key, value unsafe.Pointer) error {
	a := mapElemAttr{mapFD: uint32(fd), key: uint64(uintptr(key)), value: uint64(uintptr(value))}
	return bpfRaw(unix.BPF_MAP_LOOKUP_ELEM, unsafe.Pointer(&a), unsafe.Sizeof(a))
}

// Update writes value at key (BPF_MAP_UPDATE_ELEM, BPF_ANY). In an array
// map this also cancels and frees a bpf_timer the value holds: the
// kernel keeps the timer's bytes but releases its special fields.
func Update(fd int, key, value unsafe.Pointer) error {
	a := mapElemAttr{mapFD: uint32(fd), key: uint64(uintptr(key)), value: uint64(uintptr(value)), flags: unix.BPF_ANY}
	_, err := bpf(unix.BPF_MAP_UPDATE_ELEM, unsafe.Pointer(&a), unsafe.Sizeof(a))
	return err
}

// LoadBTF loads a BTF blob (BPF_BTF_LOAD) and returns its descriptor; the
// error carries the kernel's log.
func LoadBTF(blob []byte) (int, error) {
	log := make([]byte, 64<<10)
	a := btfLoadAttr{btf: ptr(&blob[0]), size: uint32(len(blob)), logBuf: ptr(&log[0]), logSize: uint32(len(log)), logLevel: 1}
	fd, err := bpf(unix.BPF_BTF_LOAD, unsafe.Pointer(&a), unsafe.Sizeof(a))
	runtime.KeepAlive(blob)
	if err != nil {
		return -1, &LoadError{What: "BTF (BPF_BTF_LOAD)", Err: err, Log: cstr(log)}
	}
	return fd, nil
}

// ProgSpec describes a program to load.
type ProgSpec struct {
	Name     string
	Type     uint32 // unix.BPF_PROG_TYPE_*
	Insns    []Insn
	License  string
	BTF      int        // the BTF's descriptor, for FuncInfo
	FuncInfo []FuncInfo // one per subprogram, in order
}

// LoadError is a refused load with the kernel's log (the verifier's).
type LoadError struct {
	What string
	Err  error
	Log  string
}

func (e *LoadError) Error() string {
	if e.Log == "" {
		return fmt.Sprintf("ebpf: loading %s: %v", e.What, e.Err)
	}
	return fmt.Sprintf("ebpf: loading %s: %v: %s", e.What, e.Err, e.Log)
}

func (e *LoadError) Unwrap() error { return e.Err }

// LoadProg loads a program (BPF_PROG_LOAD, asking for the verifier's log
// only when it refuses: the first attempt runs without one, as a
// successful verification's log costs time) and returns its descriptor.
func LoadProg(s ProgSpec) (int, error) {
	if len(s.Insns) == 0 {
		return -1, errors.New("ebpf: loading an empty program")
	}
	lic := append([]byte(s.License), 0)
	a := progLoadAttr{progType: s.Type, insnCnt: uint32(len(s.Insns)), insns: ptr(&s.Insns[0]), license: ptr(&lic[0]),
		progName: name(s.Name)}
	if len(s.FuncInfo) > 0 {
		a.progBTFFD, a.funcInfoRecSize = uint32(s.BTF), uint32(unsafe.Sizeof(FuncInfo{}))
		a.funcInfo, a.funcInfoCnt = ptr(&s.FuncInfo[0]), uint32(len(s.FuncInfo))
	}
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&a), unsafe.Sizeof(a))
	if err != nil {
		log := make([]byte, 256<<10)
		a.logLevel, a.logSize, a.logBuf = 1, uint32(len(log)), ptr(&log[0])
		_, err = bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&a), unsafe.Sizeof(a))
		runtime.KeepAlive(s)
		runtime.KeepAlive(lic)
		if err == nil { // accepted the second time: should not happen; report the first
			err = errors.New("refused once, then accepted")
		}
		return -1, &LoadError{What: fmt.Sprintf("program %q (BPF_PROG_LOAD)", s.Name), Err: err, Log: tail(cstr(log), 2048)}
	}
	runtime.KeepAlive(s)
	runtime.KeepAlive(lic)
	return fd, nil
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(bytes.TrimSpace(b))
}

// tail keeps the end of a long verifier log: the refusal is its last line.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// AttachSocket attaches program prog to socket fd (SO_ATTACH_BPF),
// replacing its filter, classic or not.
func AttachSocket(fd, prog int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, prog); err != nil {
		return fmt.Errorf("ebpf: SO_ATTACH_BPF: %w", err)
	}
	return nil
}

type progRunAttr struct {
	progFD, retval          uint32
	dataSizeIn, dataSizeOut uint32
	dataIn, dataOut         uint64
	repeat, duration        uint32
}

// TestRun runs program prog once on pkt (BPF_PROG_TEST_RUN; for a socket
// filter, pkt is an Ethernet frame and the program sees it from the
// network header) and returns its return value.
func TestRun(prog int, pkt []byte) (uint32, error) {
	a := progRunAttr{progFD: uint32(prog), dataSizeIn: uint32(len(pkt)), dataIn: ptr(&pkt[0]), repeat: 1}
	_, err := bpf(unix.BPF_PROG_TEST_RUN, unsafe.Pointer(&a), unsafe.Sizeof(a))
	runtime.KeepAlive(pkt)
	if err != nil {
		return 0, fmt.Errorf("ebpf: BPF_PROG_TEST_RUN: %w", err)
	}
	return a.retval, nil
}
