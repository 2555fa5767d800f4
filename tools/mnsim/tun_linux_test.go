package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/mip"
	"github.com/hagent/hagent/tools/lab"
)

// The TUN device end to end, in a namespace of its own: TestTUNNetns runs
// this test binary again inside a lab host, where TestTUNHelper plays the
// home agent on loopback and runs `mnsim register -udp-tunnel ipip -tun`
// in process. A run killed half-way leaves nothing: the device dies with
// the process's file, the namespace with the lab (or the next lab's reaper).
func TestTUNNetns(t *testing.T) {
	l := lab.NewT(t)
	h := l.HostT(t, "mn")
	t.Setenv("MNSIM_TUN_HELPER", "1")
	p, err := h.Start(os.Args[0], "-test.run=^TestTUNHelper$", "-test.count=1", "-test.v")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(2 * time.Minute):
		t.Fatalf("the helper did not finish:\n%s", p.Output())
	}
	if out := p.Output(); !p.Cmd.ProcessState.Success() || !strings.Contains(out, "--- PASS: TestTUNHelper") {
		t.Fatalf("helper in namespace %s:\n%s", h.NS, out)
	}
}

// tunHA is the helper's home agent: it accepts registrations with a UDP
// Tunnel Reply and collects the inner packets of tunnel data.
type tunHA struct {
	c    *net.UDPConn
	mu   sync.Mutex
	from []netip.AddrPort
	data chan []byte
}

func (f *tunHA) serve() {
	h := mip.NewHMACMD5([]byte("secret"))
	buf := make([]byte, 65536)
	for {
		n, from, err := f.c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		var req mip.Request
		var th mip.TunnelHeader
		switch b := buf[:n]; {
		case req.UnmarshalBinary(b) == nil:
			rep := mip.Reply{Code: mip.CodeAccepted, Lifetime: req.Lifetime, HomeAddr: req.HomeAddr, HomeAgent: req.HomeAgent, ID: req.ID,
				UDPTunnel: mip.UDPTunnelReply{Present: true, Code: mip.TunnelWillDo, Keepalive: 110}}
			out, _ := rep.AppendBinary(nil)
			f.mu.Lock()
			f.from = append(f.from, from)
			f.mu.Unlock()
			f.c.WriteToUDPAddrPort(mip.AppendMHAuth(out, 0, 300, h), from)
		case th.UnmarshalBinary(b) == nil:
			f.data <- append([]byte(nil), b[mip.TunnelHeaderLen:]...)
		}
	}
}

func (f *tunHA) registrations() []netip.AddrPort {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]netip.AddrPort(nil), f.from...)
}

// echo is an ICMP echo request from src to dst, IPv4 header included.
func echo(src, dst string, seq uint16) []byte {
	p := make([]byte, 28)
	p[0], p[3], p[8], p[9] = 0x45, 28, 64, 1
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[10:], inetChecksum(p[:20]))
	p[20] = 8
	binary.BigEndian.PutUint16(p[24:], 0x4d4e)
	binary.BigEndian.PutUint16(p[26:], seq)
	binary.BigEndian.PutUint16(p[22:], inetChecksum(p[20:]))
	return p
}

func inetChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

func TestTUNHelper(t *testing.T) {
	if os.Getenv("MNSIM_TUN_HELPER") != "1" {
		t.Skip("run by TestTUNNetns inside its namespace")
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ha := &tunHA{c: c, data: make(chan []byte, 16)}
	go ha.serve()
	defer c.Close()

	ctx, cancel := context.WithCancel(t.Context())
	var out bytes.Buffer
	ended := make(chan int, 1)
	go func() {
		ended <- run(ctx, []string{"register", "-ha", c.LocalAddr().String(), "-home", "10.1.0.5", "-coa", "172.16.0.2",
			"-spi", "300", "-key", "secret", "-udp-tunnel", "ipip", "-tun", "mntun0", "-keepalive", "1h"}, &out, &out)
	}()
	waitRegs := func(n int) netip.AddrPort {
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if r := ha.registrations(); len(r) >= n {
				return r[n-1]
			}
		}
		t.Fatalf("no registration %d; mnsim said:\n%s", n, out.String())
		return netip.AddrPort{}
	}
	first := waitRegs(1)
	// The device's MTU is what the tunnel carries unfragmented: the path
	// towards the home agent (loopback here: 65,536, which an IPv4 route
	// caps at 65,535) less 32.
	if o, err := exec.Command("ip", "-o", "link", "show", "mntun0").CombinedOutput(); err != nil || !strings.Contains(string(o), " mtu 65503 ") {
		t.Errorf("mntun0: want mtu 65503 (the route's 65535 less the tunnel's 32): %v\n%s", err, o)
	}
	// The correspondent's network is behind the tunnel.
	if o, err := exec.Command("ip", "route", "add", "198.51.100.0/24", "dev", "mntun0").CombinedOutput(); err != nil {
		t.Fatalf("ip route: %v: %s", err, o)
	}
	// A correspondent's ping through the home agent reaches the node's
	// stack through the TUN device, and the answer comes back tunnelled.
	pingThrough := func(to netip.AddrPort, seq uint16) {
		t.Helper()
		hdr, _ := mip.TunnelHeader{NextHeader: mip.NextIPv4}.AppendBinary(nil)
		if _, err := c.WriteToUDPAddrPort(append(hdr, echo("198.51.100.9", "10.1.0.5", seq)...), to); err != nil {
			t.Fatal(err)
		}
		for {
			select {
			case p := <-ha.data:
				// Echo reply from the home address to the correspondent.
				if len(p) >= 28 && p[9] == 1 && p[20] == 0 && netip.AddrFrom4([4]byte(p[12:16])) == netip.MustParseAddr("10.1.0.5") &&
					netip.AddrFrom4([4]byte(p[16:20])) == netip.MustParseAddr("198.51.100.9") && binary.BigEndian.Uint16(p[26:]) == seq {
					return
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("no echo reply %d through the tunnel; mnsim said:\n%s", seq, out.String())
			}
		}
	}
	pingThrough(first, 1)

	// A NAT mapping change: SIGUSR1 moves mnsim to a new port, it
	// re-registers from there, and the traffic follows.
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	second := waitRegs(2)
	if second.Port() == first.Port() {
		t.Fatalf("re-registered from the same port %v", second)
	}
	pingThrough(second, 2)

	cancel()
	if code := <-ended; code != 0 {
		t.Fatalf("mnsim exit %d:\n%s", code, out.String())
	}
	if s := out.String(); strings.Count(s, "registered from ") != 2 || !strings.Contains(s, "stopped: registrations 2 rebinds 1") {
		t.Errorf("mnsim said:\n%s", s)
	}
	if o, err := exec.Command("ip", "link", "show", "mntun0").CombinedOutput(); err == nil {
		t.Errorf("the TUN device outlived mnsim: %s", o)
	}
	t.Log(out.String())
}
