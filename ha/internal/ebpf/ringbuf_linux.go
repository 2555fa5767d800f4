package ebpf

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ring is a BPF_MAP_TYPE_RINGBUF used as a doorbell: a program posts a
// record (with BPF_RB_FORCE_WAKEUP) and the owner wakes in the runtime's
// poller, as for a socket; the records' contents are not read. The map's
// descriptor is non-blocking and given to the poller (os.NewFile), the
// consumer page mapped read-write and the producer page read-only.
type Ring struct {
	FD   int
	f    *os.File
	rc   syscall.RawConn
	cons []byte // the consumer page: consumer_pos (unsigned long)
	prod []byte // the producer page: producer_pos
	done chan struct{}

	notify func()
	readFn func(fd uintptr) bool
}

// NewRing creates a ring buffer of size bytes (a power of two, at least a
// page).
func NewRing(name string, size int) (*Ring, error) {
	fd, err := CreateMap(MapSpec{Name: name, Type: unix.BPF_MAP_TYPE_RINGBUF, Entries: uint32(size)})
	if err != nil {
		return nil, err
	}
	page := os.Getpagesize()
	cons, err := unix.Mmap(fd, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ebpf: mapping ring buffer %q's consumer page: %w", name, err)
	}
	prod, err := unix.Mmap(fd, int64(page), page, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		unix.Munmap(cons)
		unix.Close(fd)
		return nil, fmt.Errorf("ebpf: mapping ring buffer %q's producer page: %w", name, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Munmap(cons)
		unix.Munmap(prod)
		unix.Close(fd)
		return nil, fmt.Errorf("ebpf: ring buffer %q: O_NONBLOCK: %w", name, err)
	}
	r := &Ring{FD: fd, cons: cons, prod: prod, done: make(chan struct{})}
	r.f = os.NewFile(uintptr(fd), name)
	if r.rc, err = r.f.SyscallConn(); err != nil {
		r.Close()
		return nil, fmt.Errorf("ebpf: ring buffer %q's raw connection: %w", name, err)
	}
	r.readFn = r.ready
	return r, nil
}

func (r *Ring) consPos() *uintptr { return (*uintptr)(unsafe.Pointer(&r.cons[0])) }
func (r *Ring) prodPos() *uintptr { return (*uintptr)(unsafe.Pointer(&r.prod[0])) }

// Pending reports whether records were posted since the last Consume.
func (r *Ring) Pending() bool {
	return atomic.LoadUintptr(r.prodPos()) != atomic.LoadUintptr(r.consPos())
}

// Consume discards every record posted so far and reports whether there
// was any. One goroutine only (the owner). Allocates nothing.
func (r *Ring) Consume() bool {
	p := atomic.LoadUintptr(r.prodPos())
	if p == atomic.LoadUintptr(r.consPos()) {
		return false
	}
	atomic.StoreUintptr(r.consPos(), p)
	return true
}

// Wait calls notify, in a goroutine of its own, whenever the ring is
// readable and holds records, until Close. notify must not block; the
// owner Consumes. It allocates nothing per wake-up.
func (r *Ring) Wait(notify func()) {
	r.notify = notify
	go func() {
		defer close(r.done)
		_ = r.rc.Read(r.readFn) // returns when the descriptor is closed
	}()
}

// ready is the one RawConn.Read's callback (see deadline.Timer.read): it
// never reads; it asks to wait for the next readiness.
func (r *Ring) ready(uintptr) bool {
	if r.Pending() {
		r.notify()
	}
	return false
}

// Close stops Wait's goroutine, unmaps the pages and closes the map.
func (r *Ring) Close() error {
	err := r.f.Close()
	if r.notify != nil {
		<-r.done
	}
	unix.Munmap(r.cons)
	unix.Munmap(r.prod)
	return err
}
