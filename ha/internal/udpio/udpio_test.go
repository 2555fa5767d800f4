//go:build linux

package udpio

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func listen(t testing.TB, addr string, opts Options) *Conn {
	t.Helper()
	c, err := Listen(netip.MustParseAddrPort(addr), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func pkts(n, size int) []Packet {
	p := make([]Packet, n)
	for i := range p {
		p[i].Buf = make([]byte, size)
	}
	return p
}

// readAll reads until want packets arrived (a batch may come in pieces).
func readAll(t testing.TB, c *Conn, ps []Packet, want int) []Packet {
	t.Helper()
	got := 0
	for got < want {
		n, err := c.ReadBatch(ps[got:])
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	return ps[:got]
}

func TestMmsghdrLayout(t *testing.T) {
	want := uintptr(unix.SizeofMsghdr + 4)
	if a := unsafe.Alignof(unix.Msghdr{}); want%a != 0 {
		want += a - want%a
	}
	if s := unsafe.Sizeof(unix.Mmsghdr{}); s != want {
		t.Fatalf("unix.Mmsghdr is %d bytes, struct mmsghdr %d", s, want)
	}
}

// The server listens on 0.0.0.0; clients send to 127.0.0.1 and 127.0.0.2.
// Dst must name the address each one used, and the echo must leave from
// it (the client sees it as the sender).
func TestDstAndReplySource(t *testing.T) {
	srv := listen(t, "0.0.0.0:0", Options{Batch: 8})
	port := srv.LocalAddr().Port()
	cli := listen(t, "127.0.0.5:0", Options{})
	out := pkts(4, 64)
	dsts := []string{"127.0.0.1", "127.0.0.2", "127.0.0.2", "127.0.0.1"}
	for i := range out {
		out[i].N = copy(out[i].Buf, "req "+dsts[i])
		out[i].Src = netip.AddrPortFrom(netip.MustParseAddr(dsts[i]), port)
	}
	if n, err := cli.WriteBatch(out); n != 4 || err != nil {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
	in := readAll(t, srv, pkts(8, 64), 4)
	for i, p := range in {
		if p.Dst != netip.MustParseAddr(dsts[i]) {
			t.Errorf("packet %d: Dst %v, want %s", i, p.Dst, dsts[i])
		}
		if p.Src != cli.LocalAddr() {
			t.Errorf("packet %d: Src %v, want %v", i, p.Src, cli.LocalAddr())
		}
		if got := string(p.Buf[:p.N]); got != "req "+dsts[i] || p.Trunc {
			t.Errorf("packet %d: %q trunc %v", i, got, p.Trunc)
		}
		if lo, _ := net.InterfaceByName("lo"); lo != nil && p.Ifindex != lo.Index {
			t.Errorf("packet %d: Ifindex %d, want lo %d", i, p.Ifindex, lo.Index)
		}
		if !p.Local.IsLoopback() {
			t.Errorf("packet %d: Local %v", i, p.Local)
		}
	}
	// Echo in place: Buf[:N] goes to Src from Dst.
	for i := range in {
		in[i].N = copy(in[i].Buf, "rep")
	}
	if n, err := srv.WriteBatch(in); n != 4 || err != nil {
		t.Fatalf("echo WriteBatch = %d, %v", n, err)
	}
	back := readAll(t, cli, pkts(4, 64), 4)
	for i, p := range back {
		want := netip.AddrPortFrom(netip.MustParseAddr(dsts[i]), port)
		if p.Src != want || string(p.Buf[:p.N]) != "rep" {
			t.Errorf("reply %d from %v (%q), want from %v", i, p.Src, p.Buf[:p.N], want)
		}
	}
}

func TestTruncated(t *testing.T) {
	srv := listen(t, "127.0.0.1:0", Options{})
	cli := listen(t, "127.0.0.1:0", Options{})
	out := []Packet{{Buf: make([]byte, 100), N: 100, Src: srv.LocalAddr()}}
	if _, err := cli.WriteBatch(out); err != nil {
		t.Fatal(err)
	}
	in := readAll(t, srv, pkts(1, 10), 1)
	if !in[0].Trunc || in[0].N != 10 {
		t.Fatalf("N %d Trunc %v", in[0].N, in[0].Trunc)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	c, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.ReadBatch(pkts(1, 16))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the reader park (not needed for correctness)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadBatch after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock ReadBatch")
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.WriteBatch([]Packet{{Buf: []byte("x"), N: 1, Src: netip.MustParseAddrPort("127.0.0.1:9")}}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteBatch after Close: %v", err)
	}
}

func TestBadArguments(t *testing.T) {
	if _, err := Listen(netip.MustParseAddrPort("[::1]:0"), Options{}); err == nil {
		t.Fatal("IPv6 accepted")
	}
	c := listen(t, "127.0.0.1:0", Options{})
	if _, err := Listen(c.LocalAddr(), Options{Device: "no-such-if0"}); err == nil {
		t.Fatal("bad device accepted")
	}
	if _, err := c.ReadBatch([]Packet{{}}); err == nil {
		t.Fatal("empty Buf accepted")
	}
	if n, err := c.ReadBatch(nil); n != 0 || err != nil {
		t.Fatal("ReadBatch(nil)")
	}
	if _, err := c.WriteBatch([]Packet{{Buf: make([]byte, 4), N: 5, Src: c.LocalAddr()}}); err == nil {
		t.Fatal("N > len(Buf) accepted")
	}
	if _, err := c.WriteBatch([]Packet{{Buf: make([]byte, 4), N: 4}}); err == nil {
		t.Fatal("no destination accepted")
	}
	// A source address that is not local: the packet fails, the error says where.
	p := []Packet{{Buf: make([]byte, 4), N: 4, Src: c.LocalAddr(), Dst: netip.MustParseAddr("192.0.2.1")}}
	if n, err := c.WriteBatch(p); n != 0 || err == nil {
		t.Fatalf("non-local source: %d %v", n, err)
	}
}

func TestOptions(t *testing.T) {
	c := listen(t, "127.0.0.1:0", Options{RecvBuf: 1 << 20, SendBuf: 1 << 18, ReusePort: true, Batch: 5000})
	if c.Batch() != maxBatch {
		t.Fatalf("Batch %d", c.Batch())
	}
	rc, _ := c.File().SyscallConn()
	var v int
	rc.Control(func(fd uintptr) { v, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) })
	if v < 1<<18 { // the kernel doubles it, or caps it at rmem_max without CAP_NET_ADMIN
		t.Logf("SO_RCVBUF = %d (capped by net.core.rmem_max without privilege)", v)
	}
}

// Golden control messages in native byte order, built field by field, so the
// parser is checked on big-endian targets too (make test-mips).
func TestPktinfoCodec(t *testing.T) {
	buf := make([]byte, wctlSpace)
	putPktinfo(buf, 7, [4]byte{10, 0, 0, 1})
	h := (*unix.Cmsghdr)(unsafe.Pointer(&buf[0]))
	if int(h.Len) != unix.CmsgLen(unix.SizeofInet4Pktinfo) || h.Level != unix.IPPROTO_IP || h.Type != unix.IP_PKTINFO {
		t.Fatalf("header %+v", *h)
	}
	pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&buf[unix.CmsgLen(0)]))
	if pi.Ifindex != 7 || pi.Spec_dst != [4]byte{10, 0, 0, 1} {
		t.Fatalf("pktinfo %+v", *pi)
	}
	// A kernel-style buffer: an unrelated cmsg (IP_TTL) first, then IP_PKTINFO.
	ttl := unix.CmsgSpace(4)
	b := make([]byte, ttl+wctlSpace)
	th := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	th.Level, th.Type = unix.IPPROTO_IP, unix.IP_TTL
	th.SetLen(unix.CmsgLen(4))
	ph := (*unix.Cmsghdr)(unsafe.Pointer(&b[ttl]))
	ph.Level, ph.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
	ph.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	pp := (*unix.Inet4Pktinfo)(unsafe.Pointer(&b[ttl+unix.CmsgLen(0)]))
	pp.Ifindex, pp.Spec_dst, pp.Addr = 3, [4]byte{10, 1, 1, 1}, [4]byte{224, 0, 0, 18}
	got, ok := parsePktinfo(b)
	if !ok || got.ifindex != 3 || got.specDst != netip.MustParseAddr("10.1.1.1") || got.addr != netip.MustParseAddr("224.0.0.18") {
		t.Fatalf("parse = %+v %v", got, ok)
	}
	// Malformed: every truncation and garbage length fails cleanly.
	for i := 0; i < len(b); i++ {
		parsePktinfo(b[:i])
	}
	bad := append([]byte(nil), b...)
	th.SetLen(1 << 20)
	copy(bad, b[:unix.SizeofCmsghdr])
	if _, ok := parsePktinfo(bad); ok {
		t.Fatal("oversized cmsg_len accepted")
	}
}

func FuzzParsePktinfo(f *testing.F) {
	b := make([]byte, rctlSpace)
	putPktinfo(b, 2, [4]byte{127, 0, 0, 1})
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) { parsePktinfo(b) })
}

func TestAllocsRoundTrip(t *testing.T) {
	srv := listen(t, "0.0.0.0:0", Options{})
	cli := listen(t, "127.0.0.1:0", Options{})
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), srv.LocalAddr().Port())
	out := pkts(1, 64)
	sin, cin := pkts(4, 64), pkts(4, 64)
	round := func() {
		out[0].N, out[0].Src = 8, to
		if _, err := cli.WriteBatch(out); err != nil {
			t.Fatal(err)
		}
		n, err := srv.ReadBatch(sin)
		if err != nil || n != 1 {
			t.Fatal(n, err)
		}
		if _, err := srv.WriteBatch(sin[:n]); err != nil {
			t.Fatal(err)
		}
		if n, err := cli.ReadBatch(cin); err != nil || n != 1 || cin[0].Src != to {
			t.Fatal(n, err, cin[0].Src)
		}
	}
	round()
	if a := testing.AllocsPerRun(200, round); a != 0 {
		t.Fatalf("allocs per read+write round trip = %v, want 0", a)
	}
}

// BenchmarkRoundTrip: one request and one reply through two sockets on
// loopback per op (client write, server read+write, client read).
func BenchmarkRoundTrip(b *testing.B) {
	for _, batch := range []int{1, 32} {
		b.Run(map[int]string{1: "batch=1", 32: "batch=32"}[batch], func(b *testing.B) {
			srv := listen(b, "0.0.0.0:0", Options{RecvBuf: 4 << 20})
			cli := listen(b, "127.0.0.1:0", Options{RecvBuf: 4 << 20})
			to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), srv.LocalAddr().Port())
			out, sin, cin := pkts(batch, 64), pkts(batch, 64), pkts(batch, 64)
			for i := range out {
				out[i].N, out[i].Src = 40, to
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				cli.WriteBatch(out)
				for got := 0; got < batch; {
					n, err := srv.ReadBatch(sin[got:])
					if err != nil {
						b.Fatal(err)
					}
					if _, err := srv.WriteBatch(sin[got : got+n]); err != nil {
						b.Fatal(err)
					}
					got += n
				}
				readAll(b, cli, cin, batch)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "roundtrips/s")
		})
	}
}
