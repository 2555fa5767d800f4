package agent

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/mip"
)

// syncBuffer is a log destination the test reads while the agent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAgentLogged is startAgent with the log kept, and prefill called on
// the Core before the owner loop starts (the only time a test may touch it).
func startAgentLogged(t *testing.T, cfg *config.Config, prefill func(a *Agent)) (*Agent, *syncBuffer, func()) {
	t.Helper()
	logs := &syncBuffer{}
	a, err := New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if prefill != nil {
		prefill(a)
	}
	return a, logs, runAgent(t, a, 10*time.Second)
}

// One client sending an endless request without a newline costs the agent
// one request buffer, not the size of what it sends, and is answered.
func TestConsoleRequestLineBounded(t *testing.T) {
	cfg := loopbackConfig(t, 8)
	_, _, stop := startAgentLogged(t, cfg, nil)
	defer stop()
	c, err := net.Dial("unix", cfg.Agent.ConsoleSocket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const flood = 256 << 20
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	go func() {
		for sent := 0; sent < flood; sent += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				return // the agent answered and hung up
			}
		}
		c.(*net.UnixConn).CloseWrite()
	}()
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second)) // bounds a hang only
	line, err := bufio.NewReader(c).ReadBytes('\n')
	runtime.ReadMemStats(&after)
	var resp console.Response
	if err != nil || json.Unmarshal(line, &resp) != nil || !strings.Contains(resp.Error, "longer than 4096 bytes") {
		t.Fatalf("answer %q, %v; want an error saying the request is too long", line, err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Fatalf("the agent allocated %d MB reading one request", grew>>20)
	}
}

// Clients beyond the bound are refused at once with a message, counted;
// the ones being served are not disturbed.
func TestConsoleConnectionsBounded(t *testing.T) {
	cfg := loopbackConfig(t, 8)
	_, logs, stop := startAgentLogged(t, cfg, nil)
	defer stop()
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	busy := 0
	for range 100 {
		c, err := net.Dial("unix", cfg.Agent.ConsoleSocket)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c) // sends nothing: holds its slot until the read timeout
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		line, _ := bufio.NewReader(c).ReadBytes('\n')
		if bytes.Contains(line, []byte("busy")) {
			busy++
		}
	}
	if want := 100 - console.MaxConns; busy != want {
		t.Fatalf("%d of 100 idle clients refused, want %d (all beyond %d)", busy, want, console.MaxConns)
	}
	if n := strings.Count(logs.String(), "too many clients"); n != 1 {
		t.Fatalf("%d log lines for the refusals, want 1 (rate-limited):\n%s", n, logs.String())
	}
}

// poolConfig is loopbackConfig with a pool of n addresses for bindings.
func poolConfig(t testing.TB, n int) *config.Config {
	cfg := loopbackConfig(t, n+8)
	cfg.Nodes = append(cfg.Nodes, config.Node{Name: "pool", Pool: netip.MustParsePrefix("127.1.0.0/16"), SPI: 400, Key: keyPool,
		Algorithm: "hmac-md5", Replay: "timestamp", ReverseTunnel: true})
	return cfg
}

func fillPool(t testing.TB, n int) func(a *Agent) {
	return func(a *Agent) {
		for i := range n {
			home := netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)})
			r := rq{Request: mip.Request{Lifetime: 600, HomeAddr: home, HomeAgent: a.cfg.Agent.Address, CareOf: coa, ID: mip.Timestamp(time.Now())}, spi: 400, key: keyPool}
			out, _, _ := sealed(a.core, a.now(), time.Now(), mnSrc, a.cfg.Agent.Address, r.bytes(t), make([]byte, 0, ReplyBufLen))
			var rep mip.Reply
			if err := rep.UnmarshalBinary(out); err != nil || rep.Code != 0 {
				t.Fatalf("prefill %s: %v code %d", home, err, rep.Code)
			}
		}
	}
}

// Clients that ask for the whole table and never read cost the agent a
// bounded amount of memory, and registrations are all answered meanwhile.
// Run with -v for the figures docs/performance.md quotes.
func TestConsoleNeverReadingClients(t *testing.T) {
	const rows, clients, regs = 3000, 200, 200
	cfg := poolConfig(t, rows)
	_, _, stop := startAgentLogged(t, cfg, fillPool(t, rows))
	defer stop()

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	req := []byte(`{"cmd":"show bindings","limit":-1}` + "\n")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range clients {
		c, err := net.Dial("unix", cfg.Agent.ConsoleSocket)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		_, _ = c.Write(req) // a refused client may be closed already
	}
	answered := registerMany(t, cfg, regs)
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("%d clients asking for %d rows and never reading: heap in use grew %.1f MB; %d of %d registrations answered 0",
		clients, rows, float64(grew)/1e6, answered, regs)
	if answered != regs {
		t.Errorf("%d of %d registrations answered while the console was flooded", answered, regs)
	}
	if grew > 32<<20 {
		t.Errorf("heap grew %d MB under the console flood, want at most 32", grew>>20)
	}
}

// registerMany sends n registrations for the loopback config's node, one
// after the other, and counts those answered 0.
func registerMany(t *testing.T, cfg *config.Config, n int) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := mip.NewHMACMD5(key1)
	to := &net.UDPAddr{IP: cfg.Agent.Address.AsSlice(), Port: int(cfg.Agent.ListenPort)}
	id := mip.Timestamp(time.Now())
	ok := 0
	buf := make([]byte, 1500)
	for i := range n {
		r := mip.Request{Lifetime: 60, HomeAddr: cfg.Nodes[0].HomeAddress, HomeAgent: cfg.Agent.Address, CareOf: coa, ID: id + uint64(i+1)<<12}
		pkt, _ := r.AppendBinary(nil)
		pkt = mip.AppendMHAuth(pkt, 0, 256, h)
		if _, err := c.WriteToUDP(pkt, to); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // bounds a hang only
		m, _, err := c.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		var rep mip.Reply
		if rep.UnmarshalBinary(buf[:m]) == nil && rep.Code == mip.CodeAccepted && rep.ID == r.ID {
			ok++
		}
	}
	return ok
}

// Running out of descriptors makes accept fail; the console comes back when
// descriptors are free again, and says so in the log.
func TestConsoleSurvivesDescriptorExhaustion(t *testing.T) {
	cfg := loopbackConfig(t, 8)
	_, logs, stop := startAgentLogged(t, cfg, nil)
	defer stop()

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	low := old
	low.Cur = uint64(len(fds) + 8)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
		}
	}
	defer restore()
	// Dial until this process is out of descriptors: the connections wait
	// in the listen backlog and the agent's accept fails with EMFILE.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 64 {
		c, err := net.Dial("unix", cfg.Agent.ConsoleSocket)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	deadline := time.Now().Add(30 * time.Second) // bounds a hang only
	for !strings.Contains(logs.String(), "accepting a client failed") {
		if time.Now().After(deadline) {
			restore()
			t.Fatalf("no log line for the failed accept:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	restore()
	// The connections of the flood, accepted now, are gone and free their
	// slots as soon as their requests read end-of-file.
	var resp *console.Response
	var err error
	for range 100 {
		resp, err = console.Call(cfg.Agent.ConsoleSocket, console.Request{Cmd: "show version"}, 20*time.Second)
		if err != nil || !strings.HasPrefix(resp.Error, "busy") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || resp.Info == nil {
		t.Fatalf("console after descriptors came back: %+v %v", resp, err)
	}
}

// The console socket is never reachable by others, even for an instant:
// with umask 0 it is created elsewhere and renamed into place finished, so
// its path never appears with the umask's mode.
func TestConsoleSocketNeverOpen(t *testing.T) {
	cfg := loopbackConfig(t, 8)
	dir := filepath.Dir(cfg.Agent.ConsoleSocket)
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_ATTRIB); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0)
	_, _, stop := startAgentLogged(t, cfg, nil)
	syscall.Umask(old)
	defer stop()

	events := map[string][]uint32{}
	buf := make([]byte, 64<<10)
	n, err := unix.Read(fd, buf)
	if err != nil && !errors.Is(err, unix.EAGAIN) {
		t.Fatal(err)
	}
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		// struct inotify_event {int wd; u32 mask, cookie, len; char name[]},
		// read field by field: no alignment assumed (big-endian MIPS under
		// qemu-user faults on an unaligned pointer cast).
		mask := binary.NativeEndian.Uint32(buf[off+4:])
		ln := int(binary.NativeEndian.Uint32(buf[off+12:]))
		name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+ln]), "\x00")
		events[name] = append(events[name], mask)
		off += unix.SizeofInotifyEvent + ln
	}
	name := filepath.Base(cfg.Agent.ConsoleSocket)
	for _, m := range events[name] {
		if m&(unix.IN_CREATE|unix.IN_ATTRIB) != 0 {
			t.Fatalf("the socket was created at its path and changed there (events %#x): reachable with the umask's mode before the chmod", events[name])
		}
	}
	if len(events[name]) == 0 {
		t.Fatalf("no event for %s: %v", name, events)
	}
	st, err := os.Stat(cfg.Agent.ConsoleSocket)
	if err != nil || st.Mode().Perm() != 0o600 || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket mode %v %v, want a socket with 0600", st.Mode(), err)
	}
}

// BenchmarkConsoleAllRows is the owner loop's work for one `show bindings
// -limit -1` answer of a table of 10,000 and of 100,000 bindings, as the
// console produces it: slice by slice. ns/op is the loop's total time per
// answer; max-pause-µs is its longest slice, what a registration arriving
// meanwhile waits at most (on a shared machine, with the collector's work
// and preemption in it: p50 and p99 beside it); rows/pause the most
// entries one slice walked.
func BenchmarkConsoleAllRows(b *testing.B) {
	for _, rows := range []int{10000, 100000} {
		b.Run(fmt.Sprint(rows), func(b *testing.B) {
			cfg := bigPoolConfig(b, rows)
			a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			fillBigPool(b, rows)(a)
			b.ReportAllocs()
			var pauses []time.Duration
			visited := 0
			for b.Loop() {
				w := newBindingsWalk(console.Request{Cmd: "show bindings", Limit: -1})
				for !w.done {
					t0 := time.Now()
					a.bindingsSlice(w)
					pauses = append(pauses, time.Since(t0))
				}
				if got := len(w.assemble().Rows); got != rows {
					b.Fatalf("%d rows", got)
				}
				visited = max(visited, w.maxVisited)
			}
			slices.Sort(pauses)
			b.ReportMetric(float64(pauses[len(pauses)-1].Microseconds()), "max-pause-µs")
			b.ReportMetric(float64(pauses[len(pauses)/2].Microseconds()), "p50-pause-µs")
			b.ReportMetric(float64(pauses[len(pauses)*99/100].Microseconds()), "p99-pause-µs")
			b.ReportMetric(float64(visited), "rows/pause")
		})
	}
}
