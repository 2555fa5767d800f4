package ebpf

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// skipIfRefused skips when the kernel does not let this process use bpf(2)
// (no CAP_BPF, an old kernel), saying why.
func skipIfRefused(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) && !isLoadError(err) {
		t.Skipf("the kernel refuses bpf(2) here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func isLoadError(err error) bool {
	var le *LoadError
	return errors.As(err, &le) && le.Log != ""
}

type timerState struct {
	timer         [2]uint64
	newest, count uint64
}

// timerFixture is a socket filter that arms a bpf_timer for delay whose
// callback rings the ring buffer, loaded with hand-written BTF and
// func_info and attached to one end of a datagram socket pair.
type timerFixture struct {
	state, prog int
	ring        *Ring
	fds         [2]int
	rang        chan struct{}
}

func newTimerFixture(t *testing.T, delay time.Duration) *timerFixture {
	t.Helper()
	b, u32, val, mainFn, cbFn := timerBTF(binary.NativeEndian)
	btf, err := LoadBTF(b.Bytes())
	skipIfRefused(t, err)
	t.Cleanup(func() { unix.Close(btf) })
	f := &timerFixture{rang: make(chan struct{}, 1)}
	f.state, err = CreateMap(MapSpec{Name: "test_state", Type: unix.BPF_MAP_TYPE_ARRAY, KeySize: 4, ValueSize: 32, Entries: 1,
		BTF: btf, KeyType: u32, ValueType: val})
	skipIfRefused(t, err)
	t.Cleanup(func() { unix.Close(f.state) })
	f.ring, err = NewRing("test_ring", 4096)
	skipIfRefused(t, err)
	t.Cleanup(func() { f.ring.Close() })

	insns, cbAt := timerProgram(t, f.state, f.ring.FD, delay)
	f.prog, err = LoadProg(ProgSpec{Name: "test_timer", Type: unix.BPF_PROG_TYPE_SOCKET_FILTER, Insns: insns,
		License: "Dual MIT/GPL", BTF: btf, FuncInfo: []FuncInfo{{0, mainFn}, {uint32(cbAt), cbFn}}})
	skipIfRefused(t, err)
	t.Cleanup(func() { unix.Close(f.prog) })
	f.ring.Wait(func() {
		select {
		case f.rang <- struct{}{}:
		default:
		}
	})
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.fds = [2]int(fds)
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	if err := AttachSocket(fds[1], f.prog); err != nil {
		t.Fatal(err)
	}
	return f
}

// timerProgram: the filter records the arrival and a count in state's
// element, and arms its timer for delay; the callback posts to ring.
func timerProgram(t *testing.T, state, ring int, delay time.Duration) ([]Insn, int) {
	t.Helper()
	var a Asm
	a.Mov64Reg(R6, R1).
		StoreImm(SizeW, R10, -4, 0).Mov64Reg(R2, R10).Add64Imm(R2, -4).LoadMapFD(R1, state).Call(FuncMapLookupElem).
		JumpImm(ClassJMP, JEQ, R0, 0, "out").Mov64Reg(R7, R0).
		Call(FuncKtimeGetNs).StoreMem(SizeDW, R7, R0, 16).Mov64Imm(R1, 1).AtomicAdd64(R7, R1, 24).
		Mov64Reg(R1, R7).LoadMapFD(R2, state).Mov64Imm(R3, unix.CLOCK_MONOTONIC).Call(FuncTimerInit).
		JumpImm(ClassJMP, JNE, R0, 0, "start").
		Mov64Reg(R1, R7).LoadFunc(R2, "cb").Call(FuncTimerSetCallback).
		Label("start").Mov64Reg(R1, R7).LoadImm64(R2, uint64(delay)).Mov64Imm(R3, 0).Call(FuncTimerStart).
		Label("out").Mov64Imm(R0, 0).Exit()
	cbAt := a.Len()
	a.Label("cb").StoreImm(SizeDW, R10, -8, 1).LoadMapFD(R1, ring).Mov64Reg(R2, R10).Add64Imm(R2, -8).
		Mov64Imm(R3, 8).Mov64Imm(R4, 2 /* BPF_RB_FORCE_WAKEUP */).Call(FuncRingbufOutput).Mov64Imm(R0, 0).Exit()
	insns, err := a.Program()
	if err != nil {
		t.Fatal(err)
	}
	return insns, cbAt
}

// What the verifier requires of a timer's callback, checked so that the
// reasons given in the VRRP program's comments stay true: func_info
// (BTF) naming it, and static linkage.
func TestTimerCallbackNeeds(t *testing.T) {
	f := newTimerFixture(t, time.Millisecond)
	insns, cbAt := timerProgram(t, f.state, f.ring.FD, time.Millisecond)
	b, _, _, mainFn, _ := timerBTF(binary.NativeEndian)
	globalCb := b.Func("cb_global", b.FuncProto(1), Global)
	btf, err := LoadBTF(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(btf)
	for _, c := range []struct {
		what string
		fi   []FuncInfo
		want string
	}{
		{"no func_info", nil, "func_info"},
		{"a global callback", []FuncInfo{{0, mainFn}, {uint32(cbAt), globalCb}}, "not static"},
	} {
		fd, err := LoadProg(ProgSpec{Name: "test_timer", Type: unix.BPF_PROG_TYPE_SOCKET_FILTER, Insns: insns,
			License: "Dual MIT/GPL", BTF: btf, FuncInfo: c.fi})
		if err == nil {
			unix.Close(fd)
			t.Errorf("%s: loaded", c.what)
			continue
		}
		var le *LoadError
		if !errors.As(err, &le) || !strings.Contains(le.Log, c.want) {
			t.Errorf("%s: %v, want the verifier's log to say %q", c.what, err, c.want)
		}
		t.Logf("%s: %v", c.what, err)
	}
}

func (f *timerFixture) send(t *testing.T) {
	t.Helper()
	if _, err := unix.Write(f.fds[0], []byte("x")); err != nil {
		t.Fatal(err)
	}
}

func (f *timerFixture) lookup(t *testing.T) timerState {
	t.Helper()
	var key uint32
	var st timerState
	if err := Lookup(f.state, unsafe.Pointer(&key), unsafe.Pointer(&st)); err != nil {
		t.Fatal(err)
	}
	return st
}

// The datagram runs the filter, which drops it and arms the timer; the
// callback rings; the goroutine waiting in the poller is told.
func TestTimerRing(t *testing.T) {
	f := newTimerFixture(t, time.Millisecond)
	before := time.Now()
	f.send(t)
	select {
	case <-f.rang:
	case <-time.After(10 * time.Second):
		t.Fatal("the timer's callback did not ring within 10 s")
	}
	if d := time.Since(before); d < time.Millisecond {
		t.Errorf("rang after %v, before the timer's 1 ms", d)
	}
	if !f.ring.Consume() || f.ring.Consume() {
		t.Error("Consume: want records, then none")
	}
	st := f.lookup(t)
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	if st.count != 1 || st.newest == 0 || st.newest > uint64(ts.Nano()) {
		t.Errorf("state: count %d newest %d (now %d): want 1, a CLOCK_MONOTONIC time before now", st.count, st.newest, ts.Nano())
	}
	var n [1]byte
	if _, _, err := unix.Recvfrom(f.fds[1], n[:], unix.MSG_DONTWAIT); err != unix.EAGAIN {
		t.Errorf("the filter returned 0, yet a datagram was queued (err %v)", err)
	}
}

// A userspace update of the element cancels its armed timer (the kernel
// frees the value's special fields): the callback never runs.
func TestUpdateCancelsTimer(t *testing.T) {
	f := newTimerFixture(t, 300*time.Millisecond)
	f.send(t)
	st := f.lookup(t)
	if st.count != 1 {
		t.Fatalf("count %d after one datagram", st.count)
	}
	var key uint32
	if err := Update(f.state, unsafe.Pointer(&key), unsafe.Pointer(&st)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.rang:
		t.Fatal("the timer rang after the update that cancels it")
	case <-time.After(time.Second):
	}
	if f.ring.Pending() {
		t.Fatal("a record was posted after the update that cancels the timer")
	}
	// And it can be armed again.
	f.send(t)
	select {
	case <-f.rang:
	case <-time.After(10 * time.Second):
		t.Fatal("re-armed after the cancel, the timer did not ring")
	}
	if got := f.lookup(t).count; got != 2 {
		t.Errorf("count %d, want 2 (the update kept it)", got)
	}
}

// Ringing allocates nothing on the owner's side.
func TestConsumeAllocs(t *testing.T) {
	f := newTimerFixture(t, time.Microsecond)
	if n := testing.AllocsPerRun(100, func() { f.ring.Consume(); _ = f.ring.Pending() }); n != 0 {
		t.Errorf("%v allocations per Consume", n)
	}
}
