package agent

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/mip"
)

// freeUDPPort asks the kernel for a free port on loopback.
func freeUDPPort(t testing.TB) uint16 {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

// loopbackConfig is testConfig moved onto 127.0.0.0/8, so the runner can be
// tested with real sockets and no root: the agent is 127.0.0.1 and the
// "virtual" address 127.0.0.2 (all of 127/8 is local on Linux).
func loopbackConfig(t testing.TB, capacity int) *config.Config {
	cfg := testConfig(capacity)
	cfg.Agent.Interface = "lo"
	cfg.Agent.Address = netip.MustParseAddr("127.0.0.1")
	cfg.Agent.VirtualAddress = netip.MustParseAddr("127.0.0.2")
	cfg.Agent.HomeNetwork = netip.MustParsePrefix("127.0.0.0/8")
	cfg.Agent.ListenPort = freeUDPPort(t)
	cfg.Agent.ConsoleSocket = filepath.Join(t.TempDir(), "hagent.sock")
	cfg.Nodes[0].HomeAddress = netip.MustParseAddr("127.0.0.10")
	cfg.Nodes = cfg.Nodes[:1]
	cfg.ForeignAgents = nil
	return cfg
}

func startAgent(t testing.TB, cfg *config.Config) (*Agent, func()) {
	t.Helper()
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return a, runAgent(t, a, 5*time.Second)
}

// runAgent runs a's owner loop until it is ready (within wait) and returns
// the function that stops it (within wait) and checks how Run ended.
func runAgent(t testing.TB, a *Agent, wait time.Duration) func() {
	t.Helper()
	ready := make(chan struct{})
	a.onReady = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("agent stopped before ready: %v", err)
	case <-time.After(wait):
		t.Fatalf("agent not ready within %s", wait)
	}
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent Run: %v", err)
			}
		case <-time.After(wait):
			t.Errorf("agent did not stop within %s of cancel", wait)
		}
	}
}

func TestAgentOverUDP(t *testing.T) {
	cfg := loopbackConfig(t, 8)
	_, stop := startAgent(t, cfg)
	defer stop()

	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := mip.NewHMACMD5(key1)
	for _, dst := range []netip.Addr{cfg.Agent.Address, cfg.Agent.VirtualAddress} {
		r := mip.Request{Lifetime: 60, HomeAddr: cfg.Nodes[0].HomeAddress, HomeAgent: dst, CareOf: coa, ID: mip.Timestamp(time.Now())}
		pkt, _ := r.AppendBinary(nil)
		pkt = mip.AppendMHAuth(pkt, 0, 256, h)
		to := &net.UDPAddr{IP: dst.AsSlice(), Port: int(cfg.Agent.ListenPort)}
		if _, err := c.WriteToUDP(pkt, to); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 1500)
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no reply to a request sent to %s: %v", dst, err)
		}
		var rep mip.Reply
		if err := rep.UnmarshalBinary(buf[:n]); err != nil {
			t.Fatal(err)
		}
		if rep.Code != mip.CodeAccepted || rep.ID != r.ID {
			t.Fatalf("reply code %d id %#x", rep.Code, rep.ID)
		}
		// RFC 5944 §3.8.3.1: the reply leaves from the address the request
		// was sent to — later that is the group's virtual address.
		if got, _ := netip.AddrFromSlice(from.IP.To4()); got != dst {
			t.Errorf("request to %s answered from %s", dst, got)
		}
		time.Sleep(2 * time.Millisecond) // the next request needs a larger timestamp
	}

	resp, err := console.Call(cfg.Agent.ConsoleSocket, console.Request{Cmd: "show bindings"}, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if b := resp.Bindings; b == nil || b.Live != 1 || len(b.Rows) != 1 || b.Rows[0].Home != "127.0.0.10" || b.Rows[0].CareOf != coa.String() {
		t.Fatalf("show bindings: %+v", resp)
	}
	resp, err = console.Call(cfg.Agent.ConsoleSocket, console.Request{Cmd: "show stats"}, 3*time.Second)
	if err != nil || resp.Stats == nil {
		t.Fatalf("show stats: %v %+v", err, resp)
	}
	resp, err = console.Call(cfg.Agent.ConsoleSocket, console.Request{Cmd: "clear binding", Args: []string{"127.0.0.10"}}, 3*time.Second)
	if err != nil || resp.Error != "" {
		t.Fatalf("clear binding: %v %+v", err, resp)
	}
	resp, _ = console.Call(cfg.Agent.ConsoleSocket, console.Request{Cmd: "show bindings"}, 3*time.Second)
	if resp.Bindings.Live != 0 {
		t.Fatalf("binding still there after clear: %+v", resp.Bindings)
	}
	resp, _ = console.Call(cfg.Agent.ConsoleSocket, console.Request{Cmd: "frobnicate now"}, 3*time.Second)
	if resp.Error == "" {
		t.Fatal("unknown console command accepted")
	}
}
