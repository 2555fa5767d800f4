package agent

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/datapath"
	"github.com/hagent/hagent/ha/mip"
)

// newNATHarness is newDPHarness with UDP tunnelling offered (keepalive
// 25 s): the scripted nodes send from 127.0.0.1, their care-of address is
// another, so a NAT is detected.
func newNATHarness(t *testing.T) *dpHarness {
	t.Helper()
	cfg := loopbackConfig(t, 8)
	twoNodes(cfg)
	cfg.NAT.UDPTunnel, cfg.NAT.AcceptForced, cfg.NAT.Keepalive = true, true, 25*time.Second
	for i := range cfg.Nodes {
		cfg.Nodes[i].UDPTunnel = true
	}
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	h := &dpHarness{scripted: scripted{t: t, a: a, now: int64(time.Second)}, dp: newFakeDP(), ids: map[netip.Addr]uint64{}}
	a.grp = &group{mode: "standalone"}
	a.newRegistrar()
	h.r = a.reg
	a.dpl = &dataplane{dp: h.dp, active: true, ifname: noIf}
	a.reg.kernel = true
	return h
}

// udpReqFor is reqFor with a UDP Tunnel Request (IP in IP inside UDP).
func udpReqFor(t testing.TB, ids map[netip.Addr]uint64, a *Agent, home, coa netip.Addr) []byte {
	if ids[home] == 0 {
		ids[home] = mip.Timestamp(time.Now())
	}
	ids[home]++
	r := rq{Request: mip.Request{Lifetime: 300, HomeAddr: home, HomeAgent: a.cfg.Agent.VirtualAddress, CareOf: coa, ID: ids[home],
		UDPTunnel: mip.UDPTunnelRequest{Present: true, Encapsulation: mip.NextIPv4}}, spi: 256, key: key1}
	return r.bytes(t)
}

// Through the registrar with a kernel: a batch with a UDP-tunnelled
// registration and a plain one is programmed in one Apply, the UDP one with
// Encap UDP and the request's source as its NAT endpoint; the replies
// carry, and do not carry, the UDP Tunnel Reply; a renewal from the same
// mapping programs nothing; a UDP binding the kernel refuses is denied 130
// without the UDP Tunnel Reply and not written; 142 leaves the kernel alone.
func TestRegistrarUDPTunnel(t *testing.T) {
	h := newNATHarness(t)
	h.batch(udpReqFor(t, h.ids, h.a, home1, coa), reqFor(t, h.ids, h.a, home2, coa, 0))
	if h.dp.applies != 1 || len(h.dp.adds) != 2 {
		t.Fatalf("kernel saw %d batches (last: %d adds), want 2 adds in 1", h.dp.applies, len(h.dp.adds))
	}
	for _, b := range h.dp.adds {
		switch b.Home {
		case home1:
			if b.Encap != datapath.UDP || b.NAT != mnSrc4 {
				t.Fatalf("UDP binding programmed as %+v, want UDP to %s", b, mnSrc4)
			}
		case home2:
			if b.Encap != datapath.IPIP || b.NAT.IsValid() {
				t.Fatalf("plain binding programmed as %+v", b)
			}
		}
	}
	rs := h.replies(2)
	if u := rs[home1].UDPTunnel; rs[home1].Code != mip.CodeAccepted || !u.Present || u.Code != mip.TunnelWillDo || u.Keepalive != 25 {
		t.Fatalf("UDP-tunnelled node: code %d tunnel %+v", rs[home1].Code, u)
	}
	if r := rs[home2]; r.Code != mip.CodeAccepted || r.UDPTunnel.Present {
		t.Fatalf("plain node: code %d tunnel %+v", r.Code, r.UDPTunnel)
	}
	if e := h.a.core.Table().Get(binding.AddrU32(home1)); e == nil || e.Encap != binding.EncapUDP || e.NATPort != mnSrc4.Port() {
		t.Fatalf("UDP binding written as %+v", e)
	}

	// A renewal from the same mapping leaves the kernel alone.
	h.batch(udpReqFor(t, h.ids, h.a, home1, coa))
	if r := h.replies(1)[home1]; r.Code != mip.CodeAccepted || !r.UDPTunnel.Present || h.dp.applies != 1 {
		t.Fatalf("renewal: code %d tunnel %v, %d kernel batches (want still 1)", r.Code, r.UDPTunnel.Present, h.dp.applies)
	}

	// The kernel refuses a new UDP binding (home2 moving into UDP).
	h.dp.refuse[home2] = errors.New("no endpoint room")
	h.batch(udpReqFor(t, h.ids, h.a, home2, coa))
	if r := h.replies(1)[home2]; r.Code != mip.CodeInsufficientResources || r.Lifetime != 0 || r.UDPTunnel.Present {
		t.Fatalf("refused UDP binding: code %d lifetime %d tunnel %+v, want 130 without the UDP Tunnel Reply", r.Code, r.Lifetime, r.UDPTunnel)
	}
	if e := h.a.core.Table().Get(binding.AddrU32(home2)); e == nil || e.Encap == binding.EncapUDP {
		t.Fatalf("the refused UDP binding was written: %+v", e)
	}
	delete(h.dp.refuse, home2)
	applies := h.dp.applies

	// GRE inside UDP: 142, nothing programmed.
	h.ids[home1]++
	r := rq{Request: mip.Request{Lifetime: 300, HomeAddr: home1, HomeAgent: h.a.cfg.Agent.VirtualAddress, CareOf: coa, ID: h.ids[home1],
		UDPTunnel: mip.UDPTunnelRequest{Present: true, Encapsulation: mip.NextGRE}}, spi: 256, key: key1}
	h.batch(r.bytes(t))
	if got := h.replies(1)[home1]; got.Code != mip.CodeUDPEncapUnavailable || got.UDPTunnel.Present {
		t.Fatalf("GRE inside UDP: code %d tunnel %+v, want 142", got.Code, got.UDPTunnel)
	}
	// (The same flush may restore home2's previous binding after the
	// refused replace; nothing of home1.)
	for _, b := range h.dp.adds {
		if h.dp.applies > applies && b.Home == home1 {
			t.Fatalf("a 142 programmed the kernel: %+v", b)
		}
	}
}
