//go:build linux

package groupio

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// freePort returns a UDP port free on loopback right now.
func freePort(t testing.TB) uint16 {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

// pair opens two unicast-only Conns on lo sharing one port: 127.0.0.1 and
// 127.0.0.2 (each binds its own address, so both can hold the port).
func pair(t testing.TB) (a, b *Conn) {
	t.Helper()
	port := freePort(t)
	open := func(local string) *Conn {
		c, err := Open(Options{Interface: "lo", Local: netip.MustParseAddr(local), Port: port, RcvBuf: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b = open("127.0.0.1"), open("127.0.0.2")
	probe(t, a, b)
	return a, b
}

// probe sends one datagram a→b and reads it within 2s, so that a platform
// that cannot deliver the control messages fails fast instead of hanging.
// qemu-user (how big-endian MIPS tests run) copies IP_PKTINFO untranslated
// (ifindex 1 reads as 0x01000000), so every datagram looks like it came from
// another interface: skip there, fail elsewhere.
func probe(t testing.TB, a, b *Conn) {
	t.Helper()
	got := make(chan error, 1)
	go func() {
		_, _, _, err := b.Read(make([]byte, 64))
		got <- err
	}()
	if err := a.SendTo([]byte("probe"), b.Local()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
		return
	case <-time.After(2 * time.Second):
	}
	b.Close()
	s := b.Stats()
	if s.WrongInterface > 0 && bigEndian() {
		t.Skipf("control messages arrive untranslated (qemu-user on %s?): stats %+v", runtime.GOARCH, s)
	}
	t.Fatalf("probe datagram not read within 2s; stats %+v", s)
}

func bigEndian() bool {
	x := uint16(1)
	return *unsafePointerOf(&x) == 0
}

func TestUnicastTTLAndSource(t *testing.T) {
	a, b := pair(t)
	buf := make([]byte, 1500)
	for i, msg := range [][]byte{[]byte("hello group"), bytes.Repeat([]byte{0xa5}, 1472), {}} {
		if err := a.SendTo(msg, b.Local()); err != nil {
			t.Fatal(err)
		}
		n, src, ttl, err := b.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:n], msg) || src != a.Local() || ttl != 255 {
			t.Fatalf("datagram %d: got %d bytes from %v ttl %d, want %d bytes from %v ttl 255", i, n, src, ttl, len(msg), a.Local())
		}
	}
	// And back.
	if err := b.SendTo([]byte("ack"), netip.MustParseAddr("::ffff:127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	n, src, ttl, err := a.Read(buf)
	if err != nil || string(buf[:n]) != "ack" || src != b.Local() || ttl != 255 {
		t.Fatalf("reply: %q from %v ttl %d err %v", buf[:n], src, ttl, err)
	}
}

// A datagram sent with another TTL is reported with that TTL, so that the
// machine can reject it.
func TestForeignTTLReported(t *testing.T) {
	_, b := pair(t)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, 64); err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendto(fd, []byte("x"), 0, &unix.SockaddrInet4{Port: int(b.port), Addr: b.Local().As4()}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_, src, ttl, err := b.Read(buf)
	if err != nil || ttl != 64 || src != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("got ttl %d from %v err %v, want ttl 64 from 127.0.0.1", ttl, src, err)
	}
}

func TestTruncatedDroppedAndCounted(t *testing.T) {
	a, b := pair(t)
	if err := a.SendTo(make([]byte, 100), b.Local()); err != nil {
		t.Fatal(err)
	}
	if err := a.SendTo([]byte("ok"), b.Local()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	n, _, _, err := b.Read(buf)
	if err != nil || string(buf[:n]) != "ok" {
		t.Fatalf("got %q, %v; want the second datagram", buf[:n], err)
	}
	if s := b.Stats(); s.Truncated != 1 || s.WrongInterface != 0 {
		t.Fatalf("stats %+v, want 1 truncated", s)
	}
}

func TestZeroAllocs(t *testing.T) {
	a, b := pair(t)
	pkt := make([]byte, 68)
	buf := make([]byte, 1500)
	to := b.Local()
	var rerr error
	allocs := testing.AllocsPerRun(200, func() {
		if err := a.SendTo(pkt, to); err != nil {
			rerr = err
		}
		if _, _, _, err := b.Read(buf); err != nil {
			rerr = err
		}
	})
	if rerr != nil {
		t.Fatal(rerr)
	}
	if allocs != 0 {
		t.Fatalf("SendTo+Read: %v allocations per round, want 0", allocs)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	_, b := pair(t)
	done := make(chan error, 1)
	go func() {
		_, _, _, err := b.Read(make([]byte, 1500))
		done <- err
	}()
	// Give Read time to park in the poller; if it has not yet, Close
	// before Read must still make it return ErrClosed.
	time.Sleep(20 * time.Millisecond)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked 5s after Close")
	}
	if err := b.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.SendTo([]byte("x"), netip.MustParseAddr("127.0.0.1")); !errors.Is(err, ErrClosed) {
		t.Fatalf("SendTo after Close: %v", err)
	}
}

func TestUnicastOnlyRejectsSendGroup(t *testing.T) {
	a, _ := pair(t)
	if err := a.SendGroup([]byte("x")); err == nil || !strings.Contains(err.Error(), "unicast-only") {
		t.Fatalf("SendGroup in unicast-only mode: %v", err)
	}
	if err := a.SendTo([]byte("x"), netip.MustParseAddr("::1")); err == nil {
		t.Fatal("SendTo an IPv6 address: no error")
	}
}

func TestOpenErrors(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Local: lo, Port: 4340}, "no interface"},
		{Options{Interface: "nosuchif0", Local: lo, Port: 4340}, "not found"},
		{Options{Interface: "lo", Local: netip.MustParseAddr("192.0.2.1"), Port: 4340}, "not configured on lo"},
		{Options{Interface: "lo", Port: 4340}, "not a unicast IPv4"},
		{Options{Interface: "lo", Local: lo, Group: netip.MustParseAddr("10.0.0.1"), Port: 4340}, "not an IPv4 multicast"},
		{Options{Interface: "lo", Local: lo}, "port 0"},
	} {
		_, err := Open(tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%+v) = %v, want an error containing %q", tc.o, err, tc.want)
		}
	}
}

func TestParseCmsgs(t *testing.T) {
	b := alignedBuf(rctlSpace)
	hl := unix.CmsgLen(0)
	put := func(off, typ, dlen int) int {
		h := (*unix.Cmsghdr)(unsafe_Pointer(&b[off]))
		h.Level, h.Type = unix.IPPROTO_IP, int32(typ)
		h.SetLen(hl + dlen)
		return off + unix.CmsgSpace(dlen)
	}
	off := put(0, unix.IP_TTL, 4)
	nativePut32(b[hl:], 1)
	off2 := put(off, unix.IP_PKTINFO, unix.SizeofInet4Pktinfo)
	nativePut32(b[off+hl:], 7)
	ttl, ifx, _, ok := parseCmsgs(b[:off2])
	if !ok || ttl != 1 || ifx != 7 {
		t.Fatalf("parse = %d %d %v", ttl, ifx, ok)
	}
	if _, _, _, ok := parseCmsgs(b[:off]); ok {
		t.Fatal("missing pktinfo accepted")
	}
	if _, _, _, ok := parseCmsgs(b[:off+hl+unix.SizeofInet4Pktinfo-1]); ok {
		t.Fatal("cut pktinfo accepted")
	}
}

func FuzzParseCmsgs(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			parseCmsgs(nil)
			return
		}
		b := alignedBuf(len(in)) // the kernel's buffer is aligned; so is ours
		copy(b, in)
		parseCmsgs(b)
	})
}
