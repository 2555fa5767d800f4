package sim

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/mip"
)

// fakeHA is a home agent of one node behind a NAT, as the tunnel test needs
// it: it answers registrations (with a UDP Tunnel Reply unless noTunnel),
// remembers where the last one came from (the NAT mapping), answers
// keepalive echo requests in the tunnel, and hands other tunnel data to the
// test.
type fakeHA struct {
	c        *net.UDPConn
	key      []byte
	noTunnel bool
	mute     atomic.Bool // drop registrations unanswered
	mu       sync.Mutex
	from     []netip.AddrPort // source of each accepted registration
	data     chan []byte      // inner packets received that are not keepalives
	echoes   int
}

func startFakeHA(t *testing.T, noTunnel bool) *fakeHA {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeHA{c: c, key: []byte("secret"), noTunnel: noTunnel, data: make(chan []byte, 16)}
	done := make(chan struct{})
	go f.serve(done)
	t.Cleanup(func() { c.Close(); <-done })
	return f
}

func (f *fakeHA) addr() netip.AddrPort { return f.c.LocalAddr().(*net.UDPAddr).AddrPort() }

func (f *fakeHA) serve(done chan<- struct{}) {
	defer close(done)
	h := mip.NewHMACMD5(f.key)
	buf := make([]byte, 65536)
	for {
		n, from, err := f.c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		b := buf[:n]
		var req mip.Request
		var th mip.TunnelHeader
		switch {
		case req.UnmarshalBinary(b) == nil:
			if f.mute.Load() {
				continue
			}
			rep := mip.Reply{Code: mip.CodeAccepted, Lifetime: req.Lifetime, HomeAddr: req.HomeAddr, HomeAgent: req.HomeAgent, ID: req.ID}
			if req.UDPTunnel.Present && !f.noTunnel {
				rep.UDPTunnel = mip.UDPTunnelReply{Present: true, Code: mip.TunnelWillDo, Keepalive: 5}
			}
			out, _ := rep.AppendBinary(nil)
			out = mip.AppendMHAuth(out, 0, 300, h)
			f.mu.Lock()
			f.from = append(f.from, from)
			f.mu.Unlock()
			f.c.WriteToUDPAddrPort(out, from)
		case th.UnmarshalBinary(b) == nil:
			inner := b[mip.TunnelHeaderLen:]
			if len(inner) >= 28 && inner[9] == 1 && inner[20] == 8 { // an echo request to us: a keepalive
				f.mu.Lock()
				f.echoes++
				f.mu.Unlock()
				rep := echoReply(inner)
				out, _ := mip.TunnelHeader{NextHeader: mip.NextIPv4}.AppendBinary(nil)
				f.c.WriteToUDPAddrPort(append(out, rep...), from)
				continue
			}
			f.data <- append([]byte(nil), inner...)
		}
	}
}

// echoReply turns an echo request (20-byte header) into its reply.
func echoReply(req []byte) []byte {
	p := append([]byte(nil), req...)
	copy(p[12:16], req[16:20])
	copy(p[16:20], req[12:16])
	p[20] = 0
	p[22], p[23] = 0, 0
	binary.BigEndian.PutUint16(p[22:], checksum(p[20:]))
	return p
}

// sendData sends one tunnel data message to where the last registration
// came from: the node's current NAT mapping.
func (f *fakeHA) sendData(t *testing.T, next uint8, inner []byte) {
	f.mu.Lock()
	to := f.from[len(f.from)-1]
	f.mu.Unlock()
	out, _ := mip.TunnelHeader{NextHeader: next}.AppendBinary(nil)
	if _, err := f.c.WriteToUDPAddrPort(append(out, inner...), to); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeHA) registrations() []netip.AddrPort {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]netip.AddrPort(nil), f.from...)
}

// chanDev is a TUN device made of channels.
type chanDev struct{ in, out chan []byte }

func (d *chanDev) Read(b []byte) (int, error) {
	p, ok := <-d.in
	if !ok {
		return 0, net.ErrClosed
	}
	return copy(b, p), nil
}

func (d *chanDev) Write(b []byte) (int, error) {
	d.out <- append([]byte(nil), b...)
	return len(b), nil
}

// waitFor polls cond until it holds; the deadline only bounds a broken run.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func packet(src, dst string, payload byte) []byte {
	p := make([]byte, 21)
	p[0], p[3], p[8], p[9] = 0x45, 21, 64, 17
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	p[20] = payload
	return p
}

func TestRunTunnel(t *testing.T) {
	ha := startFakeHA(t, false)
	dev := &chanDev{in: make(chan []byte), out: make(chan []byte, 16)}
	rebind := make(chan struct{})
	events := make(chan TunnelEvent, 8)
	var st TunnelStats
	o := TunnelOptions{
		Reg: Options{HA: ha.addr(), Local: netip.MustParseAddrPort("127.0.0.1:0"), Home: netip.MustParseAddr("10.1.0.5"),
			HomeAgent: netip.MustParseAddr("192.0.2.1"), CareOf: netip.MustParseAddr("172.16.0.2"), SPI: 300, Key: []byte("secret"),
			Lifetime: 600, UDPTunnel: mip.UDPTunnelRequest{Present: true, Encapsulation: mip.NextIPv4}},
		Dev: dev, Rebind: rebind, Keepalive: 20 * time.Millisecond,
		Event: func(e TunnelEvent) { events <- e },
	}
	ctx, cancel := context_(t)
	ended := make(chan error, 1)
	go func() { ended <- RunTunnel(ctx, o, &st) }()

	e := <-events
	if e.Keepalive != 20*time.Millisecond || e.Reply.UDPTunnel.Keepalive != 5 || e.Rebinds != 0 {
		t.Fatalf("first registration: %+v", e)
	}
	first := ha.registrations()[0]
	if e.Local != first {
		t.Fatalf("event says %v, the home agent saw %v", e.Local, first)
	}

	// Home agent → node: decapsulated to the device.
	in := packet("198.51.100.9", "10.1.0.5", 1)
	ha.sendData(t, mip.NextIPv4, in)
	if got := <-dev.out; string(got) != string(in) {
		t.Fatalf("device got %x, want %x", got, in)
	}
	// Node → home agent: encapsulated on the registration's socket.
	out := packet("10.1.0.5", "198.51.100.9", 2)
	dev.in <- out
	if got := <-ha.data; string(got) != string(out) {
		t.Fatalf("home agent got %x, want %x", got, out)
	}
	// Not IPv4 inside: dropped and counted, never written to the device.
	ha.sendData(t, mip.NextGRE, in)
	waitFor(t, "the GRE message counted", func() bool { return st.Dropped.Load() == 1 })

	// Silence: keepalives leave, and their echoes are not data.
	waitFor(t, "two echoed keepalives", func() bool { return st.KeepaliveEchos.Load() >= 2 })
	if len(dev.out) != 0 {
		t.Fatalf("an echo reached the device: %x", <-dev.out)
	}

	// A new mapping: a new port, re-registered from it, and traffic follows.
	rebind <- struct{}{}
	e = <-events
	regs := ha.registrations()
	now := regs[len(regs)-1]
	if e.Rebinds != 1 || now == first || now.Addr() != first.Addr() || e.Local != now {
		t.Fatalf("after the re-bind: event %+v, registrations %v", e, regs)
	}
	ha.sendData(t, mip.NextIPv4, in)
	if got := <-dev.out; string(got) != string(in) {
		t.Fatalf("after the re-bind the device got %x", got)
	}
	dev.in <- out
	if got := <-ha.data; string(got) != string(out) {
		t.Fatalf("after the re-bind the home agent got %x", got)
	}

	cancel()
	if err := <-ended; err != nil {
		t.Fatalf("RunTunnel ended with %v", err)
	}
	if st.Registrations.Load() != 2 || st.Rebinds.Load() != 1 || st.DataIn.Load() != 2 || st.DataOut.Load() != 2 {
		t.Errorf("counters: registrations %d rebinds %d in %d out %d", st.Registrations.Load(), st.Rebinds.Load(), st.DataIn.Load(), st.DataOut.Load())
	}
	close(dev.in)
}

// The node renews before its lifetime ends, from the socket it is on.
func TestRunTunnelRenews(t *testing.T) {
	ha := startFakeHA(t, false)
	var st TunnelStats
	o := TunnelOptions{
		Reg: Options{HA: ha.addr(), Local: netip.MustParseAddrPort("127.0.0.1:0"), Home: netip.MustParseAddr("10.1.0.5"),
			CareOf: netip.MustParseAddr("172.16.0.2"), SPI: 300, Key: []byte("secret"),
			Lifetime: 2, UDPTunnel: mip.UDPTunnelRequest{Present: true, Encapsulation: mip.NextIPv4}},
	}
	ctx, cancel := context_(t)
	ended := make(chan error, 1)
	go func() { ended <- RunTunnel(ctx, o, &st) }()
	waitFor(t, "two renewals", func() bool { return st.Registrations.Load() >= 3 })
	cancel()
	if err := <-ended; err != nil {
		t.Fatal(err)
	}
	regs := ha.registrations()
	for _, r := range regs {
		if r != regs[0] {
			t.Fatalf("renewed from another socket: %v", regs)
		}
	}
}

// The node re-binds on its own period too: each time a new port, and a
// registration from it.
func TestRunTunnelRebindEvery(t *testing.T) {
	ha := startFakeHA(t, false)
	var st TunnelStats
	o := TunnelOptions{
		Reg: Options{HA: ha.addr(), Local: netip.MustParseAddrPort("127.0.0.1:0"), Home: netip.MustParseAddr("10.1.0.5"),
			CareOf: netip.MustParseAddr("172.16.0.2"), SPI: 300, Key: []byte("secret"),
			Lifetime: 600, UDPTunnel: mip.UDPTunnelRequest{Present: true, Encapsulation: mip.NextIPv4}},
		RebindEvery: 50 * time.Millisecond,
	}
	ctx, cancel := context_(t)
	ended := make(chan error, 1)
	go func() { ended <- RunTunnel(ctx, o, &st) }()
	waitFor(t, "three registrations", func() bool { return len(ha.registrations()) >= 3 })
	cancel()
	if err := <-ended; err != nil {
		t.Fatal(err)
	}
	regs := ha.registrations()
	for i := 1; i < len(regs); i++ {
		if regs[i].Port() == regs[i-1].Port() {
			t.Fatalf("registration %d from the port of the one before: %v", i+1, regs)
		}
	}
}

// A renewal without a reply (a home agent failing over) is retried, not
// the end of the node.
func TestRunTunnelRenewalRetried(t *testing.T) {
	ha := startFakeHA(t, false)
	var st TunnelStats
	o := TunnelOptions{
		Reg: Options{HA: ha.addr(), Home: netip.MustParseAddr("10.1.0.5"), CareOf: netip.MustParseAddr("172.16.0.2"), SPI: 300,
			Key: []byte("secret"), Lifetime: 2, Timeout: 100 * time.Millisecond,
			UDPTunnel: mip.UDPTunnelRequest{Present: true, Encapsulation: mip.NextIPv4}},
	}
	ctx, cancel := context_(t)
	ended := make(chan error, 1)
	go func() { ended <- RunTunnel(ctx, o, &st) }()
	waitFor(t, "the first registration", func() bool { return st.Registrations.Load() == 1 })
	ha.mute.Store(true)
	waitFor(t, "a renewal timing out", func() bool { return st.RenewTimeouts.Load() >= 2 })
	ha.mute.Store(false)
	waitFor(t, "a renewal answered", func() bool { return st.Registrations.Load() >= 2 })
	cancel()
	if err := <-ended; err != nil {
		t.Fatalf("RunTunnel ended with %v", err)
	}
}

func TestRunTunnelRefused(t *testing.T) {
	ha := startFakeHA(t, true)
	var st TunnelStats
	o := TunnelOptions{Reg: Options{HA: ha.addr(), Home: netip.MustParseAddr("10.1.0.5"), CareOf: netip.MustParseAddr("172.16.0.2"),
		SPI: 300, Key: []byte("secret"), Lifetime: 600, UDPTunnel: mip.UDPTunnelRequest{Present: true, Encapsulation: mip.NextIPv4}}}
	ctx, cancel := context_(t)
	defer cancel()
	if err := RunTunnel(ctx, o, &st); !errors.Is(err, ErrTunnelRefused) {
		t.Fatalf("a home agent without a UDP Tunnel Reply: %v", err)
	}
	o.Reg.Key = []byte("wrong")
	if err := RunTunnel(ctx, o, &st); !errors.Is(err, ErrReplyAuth) {
		t.Fatalf("a reply with a wrong authenticator: %v", err)
	}
	o.Reg.UDPTunnel.Present = false
	if err := RunTunnel(ctx, o, &st); err == nil {
		t.Fatal("no UDP Tunnel Request: no error")
	}
}

func TestEchoChecksum(t *testing.T) {
	p := appendEcho(nil, netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("192.0.2.1"), 0x1234, 7)
	if len(p) != 28 || checksum(p[:20]) != 0 || checksum(p[20:]) != 0 || p[20] != 8 || binary.BigEndian.Uint16(p[24:]) != 0x1234 {
		t.Fatalf("echo request %x", p)
	}
}

func context_(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}
