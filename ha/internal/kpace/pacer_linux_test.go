package kpace

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pair is a UDP receiver on loopback and a sender's descriptor.
func pair(t *testing.T) (rx *net.UDPConn, tx int, dst netip.AddrPort) {
	t.Helper()
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.Close() })
	tx, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(tx) })
	return rx, tx, rx.LocalAddr().(*net.UDPAddr).AddrPort()
}

func newPacer(t *testing.T, tx int, dst netip.AddrPort, interval time.Duration, batch int, o Options) *Pacer {
	t.Helper()
	p, err := NewWith(tx, dst, interval, batch, o)
	if errors.Is(err, ErrUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

var variants = []struct {
	name string
	o    Options
}{
	{"timeout+poller", Options{}},
	{"timeout+enter", Options{WaitInEnter: true}},
	{"timeout+ring", Options{WaitRing: true}},
	{"timerfd+poller", Options{TimerFD: true}},
	{"timerfd+enter", Options{TimerFD: true, WaitInEnter: true}},
}

// The chain sends batch datagrams, the first about an interval after Chain
// and the last before it returns, and no more.
func TestChainSendsBatch(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			rx, tx, dst := pair(t)
			const interval, batch = 10 * time.Millisecond, 5
			p := newPacer(t, tx, dst, interval, batch, v.o)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for round := 0; round < 2; round++ {
				start := time.Now()
				sent, err := p.Chain([]byte("advert"))
				if err != nil || sent != batch {
					t.Fatalf("Chain = %d, %v; want %d, nil", sent, err, batch)
				}
				// The timerfd's cadence started at New: its first round may end
				// early by up to one interval.
				if d := time.Since(start); d < (batch-1)*interval {
					t.Fatalf("Chain returned after %v, before %d intervals", d, batch-1)
				}
				buf := make([]byte, 64)
				for i := 0; i < batch; i++ {
					rx.SetReadDeadline(time.Now().Add(time.Second))
					n, err := rx.Read(buf)
					if err != nil || string(buf[:n]) != "advert" {
						t.Fatalf("round %d datagram %d: %q, %v", round, i, buf[:n], err)
					}
				}
				rx.SetReadDeadline(time.Now().Add(interval / 2))
				if _, err := rx.Read(buf); err == nil {
					t.Fatalf("round %d: more than %d datagrams", round, batch)
				}
			}
		})
	}
}

// A send that fails ends the chain: Chain says where and why.
func TestChainBrokenBySend(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			_, tx, dst := pair(t)
			p := newPacer(t, tx, dst, 5*time.Millisecond, 10, v.o)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			sent, err := p.Chain(make([]byte, 70000)) // above UDP's 65,507
			if sent != 0 || !errors.Is(err, unix.EMSGSIZE) {
				t.Fatalf("Chain = %d, %v; want 0, EMSGSIZE", sent, err)
			}
		})
	}
}

// Refilling a chain allocates nothing.
func TestChainAllocs(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			_, tx, dst := pair(t)
			p := newPacer(t, tx, dst, time.Millisecond, 2, v.o)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			msg := []byte("advert")
			if a := testing.AllocsPerRun(20, func() {
				if _, err := p.Chain(msg); err != nil {
					t.Fatal(err)
				}
			}); a != 0 {
				t.Fatalf("%v allocations per chain, want 0", a)
			}
		})
	}
}

// The hand-written structures have the kernel's sizes and offsets on every
// architecture (uint64 is 4-aligned on 32-bit ones).
func TestLayout(t *testing.T) {
	var s sqe
	for _, c := range []struct {
		what      string
		got, want uintptr
	}{
		{"sizeof io_uring_sqe", unsafe.Sizeof(s), 64},
		{"sqe.off", unsafe.Offsetof(s.off), 8},
		{"sqe.addr", unsafe.Offsetof(s.addr), 16},
		{"sqe.len", unsafe.Offsetof(s.len), 24},
		{"sqe.op_flags", unsafe.Offsetof(s.opFlags), 28},
		{"sqe.user_data", unsafe.Offsetof(s.userData), 32},
		{"sqe.addr3", unsafe.Offsetof(s.addr3), 48},
		{"sizeof io_uring_cqe", unsafe.Sizeof(cqe{}), 16},
		{"sizeof io_uring_params", unsafe.Sizeof(params{}), 120},
		{"params.sq_off", unsafe.Offsetof(params{}.sqOff), 40},
		{"params.cq_off", unsafe.Offsetof(params{}.cqOff), 80},
		{"sizeof __kernel_timespec", unsafe.Sizeof(kernelTimespec{}), 16},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.what, c.got, c.want)
		}
	}
}
