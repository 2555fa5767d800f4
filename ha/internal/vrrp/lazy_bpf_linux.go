//go:build linux

package vrrp

import (
	"encoding/binary"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/hagent/hagent/ha/internal/ebpf"
	"golang.org/x/sys/unix"
)

// The lazy reading (lazy_linux.go) still wakes the backup once per
// Master_Down_Interval while its master lives: the timer has to be moved
// to the newest advert, and only the process knew it. Here the kernel
// keeps the timer too. An eBPF socket filter replaces the lazy socket's
// classic one: for an advert equal to the template (the same bytes the
// classic program compares) it records the arrival (CLOCK_MONOTONIC) and
// a count in an array map whose value holds a bpf_timer, and restarts
// that timer for the Master_Down_Interval; nothing is queued (but when
// the kernel cannot start the timer: then the advert is queued as the
// classic filter would, for the process to keep the deadline). Only when
// the timer runs out (the master fell silent) does its callback post to a
// ring buffer that the runtime's poller waits on: the owner loop wakes,
// hands the machine the newest advert at its arrival time from the map,
// exactly as the lazy drain would, and the machine decides (master down
// iff now ≥ newest + Master_Down_Interval). The polled socket's filter is
// unchanged: everything else is read at once.
//
// While the map shows an arrival at or after the newest the machine
// knows, the timer is the kernel's, and the process arms its own only as
// a watchdog, bpfWatchdog after the machine's deadline: at any wake-up
// past it without the ring's call, the deadline is acted on anyway, the
// fault logged and counted, and the backup goes back to the classic
// lazy reading for good (a broken kernel timer must not keep a dead
// master alive). Until then (just attached, no matching advert yet) the
// process's deadline stays armed as without the kernel's timer.
//
// Anything the kernel refuses (no CAP_BPF, bpf_timer before 5.15, the
// verifier) is logged once with the kernel's words and leaves the classic
// path in place.

// bpfWatchdog is how far past the machine's Master_Down deadline the
// process wakes by itself while the kernel owns the timer: rare enough
// that an idle backup wakes about once per this (instead of once per
// Master_Down_Interval), short enough that a broken kernel timer delays a
// takeover by this at most.
const bpfWatchdog = 2 * time.Second

// bpfState is the map's value (struct vrrp_down in the BTF).
type bpfState struct {
	timer  [2]uint64 // struct bpf_timer: the kernel's
	newest uint64    // CLOCK_MONOTONIC ns of the newest matching advert
	count  uint64    // matching adverts since the map was created
}

// bpfHooks are fault injections for tests.
type bpfHooks struct {
	refuse    bool // the program cannot be loaded: the classic path
	skipStart bool // the program never starts the timer: the watchdog's case
	startFail bool // bpf_timer_start's call is replaced by its failure (-ENOMEM)
	// tear: so many of drain's next reads of the map come out torn, the
	// new count with the previous arrival (the kernel copies the value
	// while the program writes it on another CPU).
	tear int
}

// bpfLazy is the kernel-timer path of the lazy socket (owner goroutine,
// but the counters and Stats' lookups).
type bpfLazy struct {
	z          *lazy
	m          *Machine
	hooks      bpfHooks
	btf, state int
	ring       *ebpf.Ring
	mainFn     ebpf.TypeID
	cbFn       ebpf.TypeID

	off     atomic.Bool   // fell back to the classic path for good (read by Stats)
	active  bool          // the program is attached (a template is set)
	mdi     time.Duration // the attached program's Master_Down_Interval
	owns    bool          // the kernel's timer runs from the newest advert the machine knows
	handing bool          // drain is handing the machine the map's advert
	seen    uint64        // the map's count the machine was handed
	due     time.Duration // the machine's last deadline
	key     uint32
	st      bpfState
	marker  rxEvent // what a ring wake-up sends the loop: a timer event

	rings, watchdogs atomic.Uint64
	closed           uint64 // the kernel's count when the map was closed (under mu)
	// mu keeps close from reusing the map's descriptor number under a
	// lookup of Stats (another map's larger value would be copied out).
	mu sync.Mutex
}

// openBPF prepares the kernel-timer path and proves it on this kernel (a
// program is loaded once); nil (logged) when the kernel refuses.
func (r *Runner) openBPF(z *lazy, m *Machine) *bpfLazy {
	b, err := newBPF(z, m, r.bpfHooks)
	if err != nil {
		r.sh.Log.Info("vrrp: the kernel cannot keep the Master_Down_Timer (eBPF socket filter with bpf_timer); the backup wakes once per Master_Down_Interval", "err", err)
		return nil
	}
	r.sh.Log.Info("vrrp: the kernel keeps a backup's Master_Down_Timer (eBPF socket filter with bpf_timer)")
	return b
}

func newBPF(z *lazy, m *Machine, hooks bpfHooks) (*bpfLazy, error) {
	b := &bpfLazy{z: z, m: m, hooks: hooks, btf: -1, state: -1, marker: rxEvent{Event: Event{Kind: EvTimer}}}
	err := b.open()
	if err == nil {
		var prog int
		if prog, err = b.load(bpfProbe[:], time.Second); err == nil {
			unix.Close(prog)
		}
	}
	if err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// bpfProbe is a template for the start-up load.
var bpfProbe = [20 + HeaderLen]byte{0x45}

func (b *bpfLazy) open() error {
	if b.hooks.refuse {
		return errors.New("refused by a test hook")
	}
	bt := ebpf.NewBTF(binary.NativeEndian)
	i32 := bt.Int("int", 4, true)
	u32 := bt.Int("__u32", 4, false)
	u64 := bt.Int("__u64", 8, false)
	timer := bt.Struct("bpf_timer", 16, ebpf.Member{Name: "__opaque", Type: bt.Array(u64, u32, 2)})
	val := bt.Struct("vrrp_down", uint32(unsafe.Sizeof(bpfState{})), ebpf.Member{Name: "t", Type: timer},
		ebpf.Member{Name: "newest_ns", Type: u64, BitOff: 128}, ebpf.Member{Name: "count", Type: u64, BitOff: 192})
	proto := bt.FuncProto(i32)
	b.mainFn = bt.Func("vrrp_follow", proto, ebpf.Global)
	b.cbFn = bt.Func("vrrp_down", proto, ebpf.Static)
	var err error
	if b.btf, err = ebpf.LoadBTF(bt.Bytes()); err != nil {
		return err
	}
	if b.state, err = ebpf.CreateMap(ebpf.MapSpec{Name: "vrrp_down", Type: unix.BPF_MAP_TYPE_ARRAY, KeySize: 4,
		ValueSize: uint32(unsafe.Sizeof(bpfState{})), Entries: 1, BTF: b.btf, KeyType: u32, ValueType: val}); err != nil {
		return err
	}
	b.ring, err = ebpf.NewRing("vrrp_down", os.Getpagesize())
	return err
}

// start lets a ring wake-up reach the owner loop as a timer event on the
// received channel (dropped when the loop is that far behind: it then
// reads the ring at its next wake-up, the watchdog's at the latest).
func (b *bpfLazy) start(adverts chan<- rxEvent) {
	if b == nil {
		return
	}
	b.ring.Wait(func() {
		b.rings.Add(1)
		select {
		case adverts <- b.marker:
		default:
		}
	})
}

func (b *bpfLazy) close() {
	if b == nil {
		return
	}
	if b.ring != nil {
		b.ring.Close()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// Kept: Stats' counters must not go backwards once the map is gone.
	b.closed = b.countLocked()
	for _, fd := range []int{b.state, b.btf} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	b.state, b.btf = -1, -1
}

// program is the socket filter for tmpl: see the file's comment. The
// packet's bytes are copied to the stack (bpf_skb_load_bytes: the
// verifier refuses the classic packet loads in a program with a
// callback) and compared as filter.go's program compares them.
func (b *bpfLazy) program(tmpl []byte, mdi time.Duration) (insns []ebpf.Insn, cbAt int, err error) {
	const (
		W, H, B, DW = ebpf.SizeW, ebpf.SizeH, ebpf.SizeB, ebpf.SizeDW
		J, J32      = ebpf.ClassJMP, ebpf.ClassJMP32
	)
	n := len(tmpl)
	buf := int16(-(n + 7) &^ 7) // the copy's offset from the frame pointer, 8-aligned
	var a ebpf.Asm
	a.Mov64Reg(ebpf.R6, ebpf.R1).
		LoadMem(W, ebpf.R2, ebpf.R6, 0). // __sk_buff.len
		JumpImm(J32, ebpf.JNE, ebpf.R2, int32(n), "drop").
		Mov64Reg(ebpf.R1, ebpf.R6).Mov64Imm(ebpf.R2, 0).Mov64Reg(ebpf.R3, ebpf.R10).Add64Imm(ebpf.R3, int32(buf)).
		Mov64Imm(ebpf.R4, int32(n)).Call(ebpf.FuncSkbLoadBytes).
		JumpImm(J, ebpf.JNE, ebpf.R0, 0, "drop")
	cmp := func(size uint8, off int, v uint32) {
		a.LoadMem(size, ebpf.R1, ebpf.R10, buf+int16(off)).JumpImm(J32, ebpf.JNE, ebpf.R1, int32(v), "drop")
	}
	// Loaded from memory in the machine's order: compared likewise.
	ne := binary.NativeEndian
	cmp(B, 0, uint32(tmpl[0]))
	cmp(H, 2, uint32(ne.Uint16(tmpl[2:])))
	cmp(H, 8, uint32(ne.Uint16(tmpl[8:])))
	off := 12
	for ; off+4 <= n; off += 4 {
		cmp(W, off, ne.Uint32(tmpl[off:]))
	}
	for ; off < n; off++ {
		cmp(B, off, uint32(tmpl[off]))
	}
	// The timer first: an advert is recorded (and dropped) only once the
	// kernel keeps the timer for it. If it cannot (bpf_timer_init's
	// allocation, or bpf_timer_start, failed), the advert is queued on the
	// lazy socket as the classic filter would, and the process reads it
	// and keeps the deadline itself; taken as if the timer ran, it would
	// leave a dead master alive until the watchdog.
	a.StoreImm(W, ebpf.R10, buf-8, 0).Mov64Reg(ebpf.R2, ebpf.R10).Add64Imm(ebpf.R2, int32(buf-8)).
		LoadMapFD(ebpf.R1, b.state).Call(ebpf.FuncMapLookupElem).
		JumpImm(J, ebpf.JEQ, ebpf.R0, 0, "queue").Mov64Reg(ebpf.R7, ebpf.R0).
		// Initialised once per arming (a map update frees the timer):
		// -EBUSY afterwards, and the callback is set with the first.
		Mov64Reg(ebpf.R1, ebpf.R7).LoadMapFD(ebpf.R2, b.state).Mov64Imm(ebpf.R3, unix.CLOCK_MONOTONIC).Call(ebpf.FuncTimerInit).
		JumpImm(J, ebpf.JNE, ebpf.R0, 0, "start").
		Mov64Reg(ebpf.R1, ebpf.R7).LoadFunc(ebpf.R2, "down").Call(ebpf.FuncTimerSetCallback).
		Label("start")
	switch {
	case b.hooks.startFail:
		a.Mov64Imm(ebpf.R0, -int32(unix.ENOMEM)).JumpImm(J, ebpf.JNE, ebpf.R0, 0, "queue")
	case !b.hooks.skipStart:
		// Without a callback (its setting failed) this fails too.
		a.Mov64Reg(ebpf.R1, ebpf.R7).LoadImm64(ebpf.R2, uint64(mdi)).Mov64Imm(ebpf.R3, 0).Call(ebpf.FuncTimerStart).
			JumpImm(J, ebpf.JNE, ebpf.R0, 0, "queue")
	}
	a.Call(ebpf.FuncKtimeGetNs).StoreMem(DW, ebpf.R7, ebpf.R0, 16).
		Mov64Imm(ebpf.R1, 1).AtomicAdd64(ebpf.R7, ebpf.R1, 24).
		Label("drop").Mov64Imm(ebpf.R0, 0).Exit().
		Label("queue").Mov64Imm(ebpf.R0, bpfAccept).Exit()
	// The timer's callback (map, key, value): the newest arrival, posted
	// with a wake-up.
	cbAt = a.Len()
	a.Label("down").LoadMem(DW, ebpf.R1, ebpf.R3, 16).StoreMem(DW, ebpf.R10, ebpf.R1, -8).
		LoadMapFD(ebpf.R1, b.ring.FD).Mov64Reg(ebpf.R2, ebpf.R10).Add64Imm(ebpf.R2, -8).Mov64Imm(ebpf.R3, 8).
		Mov64Imm(ebpf.R4, unix.BPF_RB_FORCE_WAKEUP).Call(ebpf.FuncRingbufOutput).
		Mov64Imm(ebpf.R0, 0).Exit()
	insns, err = a.Program()
	return insns, cbAt, err
}

// load loads the program for tmpl; the error carries the verifier's log.
func (b *bpfLazy) load(tmpl []byte, mdi time.Duration) (int, error) {
	insns, cbAt, err := b.program(tmpl, mdi)
	if err != nil {
		return -1, err
	}
	return ebpf.LoadProg(ebpf.ProgSpec{Name: "vrrp_follow", Type: unix.BPF_PROG_TYPE_SOCKET_FILTER, Insns: insns,
		License: "Dual MIT/GPL", BTF: b.btf,
		FuncInfo: []ebpf.FuncInfo{{InsnOff: 0, TypeID: b.mainFn}, {InsnOff: uint32(cbAt), TypeID: b.cbFn}}})
}

// attach puts the program for tmpl on the lazy socket in place of its
// filter; false (logged once, the classic path from then on) if the
// kernel refuses.
func (b *bpfLazy) attach(tmpl []byte) bool {
	mdi := b.m.MasterDownInterval()
	prog, err := b.load(tmpl, mdi)
	if err == nil {
		err = ebpf.AttachSocket(b.z.fd, prog)
		unix.Close(prog) // the socket holds it
	}
	if err != nil {
		b.off.Store(true)
		b.z.r.sh.Log.Error("vrrp: attaching the eBPF filter that keeps the Master_Down_Timer failed; the backup reads its master's adverts lazily instead", "err", err)
		return false
	}
	b.active, b.mdi, b.owns = true, mdi, false
	return true
}

// detached: the lazy socket's filter is a classic one again; the timer,
// if armed, is cancelled (a userspace update of the element frees it),
// the count kept.
func (b *bpfLazy) detached() {
	if !b.active {
		return
	}
	b.active, b.owns = false, false
	var st bpfState
	if err := ebpf.Lookup(b.state, unsafe.Pointer(&b.key), unsafe.Pointer(&st)); err == nil {
		err = ebpf.Update(b.state, unsafe.Pointer(&b.key), unsafe.Pointer(&st))
		if err == nil {
			b.seen = st.count
			b.ring.Consume() // a call from before is stale
			return
		}
	}
	// Cannot happen with a valid map; the stale call moves nothing.
	b.z.r.sh.Log.Error("vrrp: cancelling the kernel's Master_Down_Timer failed")
}

// attachLazy attaches the lazy socket's filter for tmpl (nil: none): the
// eBPF program while it works, else the classic one.
func (z *lazy) attachLazy(tmpl []byte) error {
	b := z.bpf
	if b != nil && !b.off.Load() && tmpl != nil && b.attach(tmpl) {
		return nil
	}
	err := z.attach(z.fd, tmpl, true)
	if b != nil {
		b.detached()
	}
	return err
}

// drain is the kernel path's part of every wake-up, before anything is
// handled: it takes the ring's call if any, hands the machine the map's
// newest advert if it has not had it, and is the watchdog. Allocates
// nothing.
func (b *bpfLazy) drain(handle func(rxEvent)) {
	if b == nil || !b.active {
		return
	}
	fired := b.ring.Consume()
	if fired {
		b.owns = false // the kernel's timer ran out: the process's from here
	}
	if err := b.read(); err != nil {
		b.fault("reading the kernel's state failed", err)
		return
	}
	if b.st.count != b.seen {
		b.seen = b.st.count
		// Kernel time first: read after it, the machine's clock gives
		// an arrival late by the gap, never early.
		// (RawSyscall: see ebpf.Lookup.)
		var ts unix.Timespec
		unix.RawSyscall(unix.SYS_CLOCK_GETTIME, unix.CLOCK_MONOTONIC, uintptr(unsafe.Pointer(&ts)), 0)
		now := b.z.now()
		ev := rxEvent{Event: b.z.follows}
		ev.Arrived = 0
		if age := time.Duration(ts.Nano() - int64(b.st.newest)); age >= 0 && now-age > 0 {
			ev.Arrived = now - age
		}
		b.owns = !fired
		b.handing = true
		handle(ev)
		b.handing = false
		return
	}
	if fired {
		// The timer ran out on the newest advert the machine has. The
		// ring's goroutine sends its marker only if the ring still holds
		// the call when it looks, and this wake-up may have taken it
		// first (a stale tick that handles nothing): the machine is told
		// here, so that the loop's deadline is its own again, not the
		// watchdog's. The marker, if it comes too, finds nothing due.
		handle(b.marker)
		return
	}
	if b.owns && b.z.now() >= b.due+bpfWatchdog {
		b.fault("the kernel's Master_Down_Timer did not fire", nil)
	}
}

// fault: the kernel's timer cannot be trusted. Back to the classic lazy
// reading for good; the machine's deadline is armed again by the next
// handling (or acted on now: the watchdog's wake-up is past it).
func (b *bpfLazy) fault(what string, err error) {
	b.watchdogs.Add(1)
	b.off.Store(true)
	b.z.r.sh.Log.Error("vrrp: "+what+"; the backup reads its master's adverts lazily from now on",
		"err", err, "late", b.z.now()-b.due)
	b.classic()
}

// classic puts the classic lazy filter of the template in the eBPF
// program's place (b.off is set); if the kernel refuses it too, every
// advert is read at once (lazy.eager).
func (b *bpfLazy) classic() {
	z := b.z
	var t []byte
	if z.n > 0 {
		t = z.tmpl[:z.n]
	}
	if err := z.attachLazy(t); err != nil {
		z.eager(err)
		return
	}
	z.pending = true
}

// after follows the machine's handling of ev (owner goroutine): an advert
// read at once is newer than the map's (the process arms its deadline
// until the map shows a newer one); a new Master_Down_Interval (our
// priority moved the skew) re-attaches the program; and the deadline the
// loop arms is the watchdog's while the kernel owns the timer.
func (b *bpfLazy) after(m *Machine, ev *rxEvent, dl time.Duration) time.Duration {
	if b == nil || !b.active {
		return dl
	}
	if ev.Kind == EvAdvert && !b.handing {
		b.owns = false
	}
	if mdi := m.MasterDownInterval(); mdi != b.mdi && b.z.n > 0 && m.State() == Backup {
		if !b.attach(b.z.tmpl[:b.z.n]) {
			b.classic()
		}
	}
	b.due = dl
	if b.owns && m.State() == Backup && dl < NoDeadline-bpfWatchdog {
		return dl + bpfWatchdog
	}
	return dl
}

// adverts is how many adverts the kernel took (any goroutine).
func (b *bpfLazy) adverts() uint64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.countLocked()
}

// countLocked is the kernel's count, or the one kept when the map was
// closed (b.mu held).
func (b *bpfLazy) countLocked() uint64 {
	if b.state < 0 {
		return b.closed
	}
	var key uint32
	var st bpfState
	if ebpf.Lookup(b.state, unsafe.Pointer(&key), unsafe.Pointer(&st)) != nil {
		return b.closed
	}
	return st.count
}

// read copies the map's value into b.st. The kernel copies it without a
// lock while the program may be writing it on another CPU, so a copy can
// pair a new count with the previous arrival: the machine would then count
// its Master_Down_Timer from the advert before the newest, and with
// adverts two seconds or more apart the watchdog's wake-up could act on
// that earlier deadline, before the master is due. Two copies in a row
// that agree are one state (the count only grows); at most a few tries,
// the last copy kept (a program rewriting it that often is a flood, and
// the next wake-up reads again).
func (b *bpfLazy) read() error {
	prev := b.st.newest
	var last bpfState
	for try := 0; try < 4; try++ {
		last = b.st
		if err := ebpf.Lookup(b.state, unsafe.Pointer(&b.key), unsafe.Pointer(&b.st)); err != nil {
			return err
		}
		if b.hooks.tear > 0 {
			b.hooks.tear--
			b.st.newest = prev
		}
		if try > 0 && b.st.count == last.count && b.st.newest == last.newest {
			return nil
		}
		if try == 0 && b.st.count == b.seen {
			return nil // nothing new: nothing the machine would be handed
		}
	}
	return nil
}
