package agent

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/mip"
)

// bigPoolConfig is loopbackConfig with a pool of 131,072 addresses
// (127.2.0.0/15) and room for n bindings in it.
func bigPoolConfig(t testing.TB, n int) *config.Config {
	cfg := loopbackConfig(t, n+8)
	cfg.Nodes = append(cfg.Nodes, config.Node{Name: "pool", Pool: netip.MustParsePrefix("127.2.0.0/15"), SPI: 400, Key: keyPool,
		Algorithm: "hmac-md5", Replay: "timestamp", ReverseTunnel: true})
	return cfg
}

func bigPoolHome(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(2 + i>>16), byte(i >> 8), byte(i)})
}

// registerPool registers home with the pool node on the Core directly (the
// owner loop must not be running).
func registerPool(t testing.TB, a *Agent, home netip.Addr, flags uint8) {
	r := rq{Request: mip.Request{Flags: flags, Lifetime: 600, HomeAddr: home, HomeAgent: a.cfg.Agent.Address, CareOf: coa, ID: mip.Timestamp(time.Now())}, spi: 400, key: keyPool}
	out, _, _ := sealed(a.core, a.now(), time.Now(), mnSrc, a.cfg.Agent.Address, r.bytes(t), make([]byte, 0, ReplyBufLen))
	var rep mip.Reply
	if err := rep.UnmarshalBinary(out); err != nil || rep.Code != 0 {
		t.Fatalf("register %s: %v code %d", home, err, rep.Code)
	}
}

func fillBigPool(t testing.TB, n int) func(a *Agent) {
	return func(a *Agent) {
		for i := range n {
			registerPool(t, a, bigPoolHome(i), 0)
		}
	}
}

// With 100,000 bindings, a console client asking for every row costs the
// owner loop at most one slice per iteration, and a registration arriving
// meanwhile is answered before the answer is finished; the answer is the
// whole table.
func TestConsoleAllRowsInSlices(t *testing.T) {
	const rows = 100000
	cfg := bigPoolConfig(t, rows)
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	fillBigPool(t, rows)(a)

	mn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer mn.Close()
	h := mip.NewHMACMD5(key1)
	reg := mip.Request{Lifetime: 60, HomeAddr: cfg.Nodes[0].HomeAddress, HomeAgent: cfg.Agent.Address, CareOf: coa, ID: mip.Timestamp(time.Now())}
	pkt, _ := reg.AppendBinary(nil)
	pkt = mip.AppendMHAuth(pkt, 0, 256, h)
	to := &net.UDPAddr{IP: cfg.Agent.Address.AsSlice(), Port: int(cfg.Agent.ListenPort)}

	// On the loop, after each slice: the first sends the registration and
	// waits until the reader has queued it (so the loop has both ready from
	// then on); the others look for the reply without waiting.
	slices, answeredAt, maxPause := 0, 0, 0
	buf := make([]byte, 1500)
	a.onSlice = func(w *bindingsWalk) {
		slices++
		if w.done {
			maxPause = w.maxVisited
		}
		if slices == 1 {
			if _, err := mn.WriteToUDP(pkt, to); err != nil {
				t.Error(err)
			}
			for end := time.Now().Add(30 * time.Second); len(a.rx) == 0 && time.Now().Before(end); { // bounds a hang only
				time.Sleep(time.Millisecond)
			}
			return
		}
		if answeredAt != 0 {
			return
		}
		// A read that never waits: the reply is there or not.
		n, err := -1, error(nil)
		if rc, cerr := mn.SyscallConn(); cerr == nil {
			_ = rc.Read(func(fd uintptr) bool {
				n, _, err = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
				return true
			})
		}
		var rep mip.Reply
		if err == nil && n > 0 && rep.UnmarshalBinary(buf[:n]) == nil && rep.Code == mip.CodeAccepted && rep.ID == reg.ID {
			answeredAt = slices
		} else if err != nil && !errors.Is(err, unix.EAGAIN) {
			t.Error(err)
		}
	}
	_, stop := startWith(t, a)
	defer stop()

	resp, err := console.Call(cfg.Agent.ConsoleSocket, console.Request{Cmd: "show bindings", Limit: -1}, 120*time.Second)
	if err != nil || resp.Bindings == nil {
		t.Fatalf("show bindings: %+v %v", resp, err)
	}
	b := resp.Bindings
	t.Logf("%d rows in %d slices, at most %d entries per owner-loop iteration; registration answered after slice %d",
		len(b.Rows), slices, maxPause, answeredAt)
	if maxPause > 2048 {
		t.Errorf("one owner-loop iteration walked %d table entries for the answer; want at most 2048", maxPause)
	}
	if answeredAt == 0 || answeredAt >= slices {
		t.Errorf("the registration was answered after slice %d of %d: it waited for the whole answer", answeredAt, slices)
	}
	checkWholeTable(t, b, rows)
}

// checkWholeTable: every pool home exactly once, the counts agree with the
// rows. The loopback node's own binding, registered during the answer, may
// be there or not.
func checkWholeTable(t *testing.T, b *console.Bindings, pool int) {
	t.Helper()
	seen := make(map[string]int, len(b.Rows))
	for _, r := range b.Rows {
		seen[r.Home]++
	}
	for i := range pool {
		if h := bigPoolHome(i).String(); seen[h] != 1 {
			t.Fatalf("%s appears %d times in the answer", h, seen[h])
		}
	}
	if len(seen) != len(b.Rows) || b.Live+b.Tombs != len(b.Rows) || b.Truncated != 0 || len(b.Rows) > pool+1 {
		t.Fatalf("%d rows, %d homes, live %d tombstones %d truncated %d", len(b.Rows), len(seen), b.Live, b.Tombs, b.Truncated)
	}
}

// startWith runs an agent built by the test (hooks set) until stop.
func startWith(t *testing.T, a *Agent) (*Agent, func()) {
	t.Helper()
	return a, runAgent(t, a, 10*time.Second)
}

// A table changing between slices: a home present throughout appears once;
// a home removed and added again ahead of the walk (seen twice) appears
// once, in its later state; a home removed after it was walked appears in
// its old state; the counts agree with the rows.
func TestBindingsWalkUnderChange(t *testing.T) {
	const n = 3 * sliceEntries
	cfg := bigPoolConfig(t, n+2)
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	fillBigPool(t, n)(a)
	tbl := a.core.table
	w := newBindingsWalk(console.Request{Cmd: "show bindings", Limit: -1})
	a.bindingsSlice(w) // walks homes 0 … sliceEntries-1
	moved, gone := bigPoolHome(0), bigPoolHome(1)
	// moved: removed, its slot taken by a new home, added again: it lands
	// above the high-water mark, ahead of the walk, with the T bit now.
	tbl.Delete(binding.AddrU32(moved))
	registerPool(t, a, bigPoolHome(n), 0)
	registerPool(t, a, moved, mip.FlagT)
	tbl.Delete(binding.AddrU32(gone))
	for !w.done {
		a.bindingsSlice(w)
	}
	b := w.assemble()
	seen := map[string]console.Binding{}
	for _, r := range b.Rows {
		if _, dup := seen[r.Home]; dup {
			t.Fatalf("%s appears twice", r.Home)
		}
		seen[r.Home] = r
	}
	for i := range n {
		if _, ok := seen[bigPoolHome(i).String()]; !ok {
			t.Fatalf("%s, walked before it changed or present throughout, is missing", bigPoolHome(i))
		}
	}
	if r := seen[moved.String()]; r.Flags != "T" {
		t.Fatalf("%s shown as %+v; want its later state (flags T)", moved, r)
	}
	if b.Live != len(b.Rows) || b.Reverse != 1 || b.IPIP != len(b.Rows) || b.Truncated != 0 {
		t.Fatalf("counts live %d ipip %d reverse %d truncated %d for %d rows", b.Live, b.IPIP, b.Reverse, b.Truncated, len(b.Rows))
	}
}
