package agent

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/udpio"
	"github.com/hagent/hagent/ha/mip"
)

// The loop's part of a batch (handleBatch: the registrar's Handle, then
// performing its actions with sendmmsg) allocates nothing either.
func TestHandleBatchAllocatesNothing(t *testing.T) {
	cfg := loopbackConfig(t, 8)
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if a.conn, err = udpio.Listen(netip.AddrPortFrom(cfg.Agent.Address, cfg.Agent.ListenPort), udpio.Options{}); err != nil {
		t.Fatal(err)
	}
	mn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.conn.Close(); mn.Close() })
	a.grp = &group{mode: "standalone"}
	a.newRegistrar()
	src := mn.LocalAddr().(*net.UDPAddr).AddrPort()
	id := mip.Timestamp(time.Now())
	reqs := make([][]byte, 64)
	for i := range reqs {
		id++
		r := rq{Request: mip.Request{Lifetime: 300, HomeAddr: cfg.Nodes[0].HomeAddress, HomeAgent: cfg.Agent.VirtualAddress, CareOf: coa, ID: id}, spi: 256, key: key1}
		reqs[i] = r.bytes(t)
	}
	i := 0
	allocs := testing.AllocsPerRun(50, func() {
		b := <-a.free
		p := &b.in[0]
		p.N = copy(p.Buf, reqs[i%len(reqs)])
		p.Src, p.Dst, p.Trunc, p.Ifindex = src, cfg.Agent.VirtualAddress, false, 0
		b.n = 1
		a.handleBatch(b)
		i++
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per batch", allocs)
	}
	if a.core.Stats.Codes[mip.CodeAccepted] < 50 || a.core.Stats.SendErrors != 0 {
		t.Fatalf("accepted %d, send errors %d: the test measured the wrong path", a.core.Stats.Codes[0], a.core.Stats.SendErrors)
	}
}
