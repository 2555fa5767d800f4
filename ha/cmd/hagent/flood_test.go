package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/mip"
)

// TestConsoleFloodsRSS runs a member holding 10,000 bindings and floods its
// console three ways: one request of 256 MB without a newline, 1,000 idle
// connections, and 1,000 clients asking for every row and never reading
// while 1,000 registrations arrive. It asserts the member's peak RSS stays
// under 64 MB and every registration is answered; -v prints the figures
// docs/performance.md quotes.
func TestConsoleFloodsRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a member with 10,000 bindings")
	}
	const bindings, clients = 10000, 1000
	dir := t.TempDir()
	sock := filepath.Join(dir, "hagent.sock")
	port := freeUDPPort(t)
	cfg := fmt.Sprintf(`[agent]
interface = "lo"
address = "127.0.0.1"
home_network = "127.0.0.0/8"
listen_port = %d
console_socket = %q
capacity = %d
max_lifetime = 3600
[datapath]
enabled = false
[[node]]
name = "mn1"
home_address = "127.0.0.10"
spi = 256
key = "text:0123456789abcdef"
[[node]]
name = "fleet"
pool = "127.1.0.0/16"
spi = 400
key = "text:pool-shared-key!"
`, port, sock, bindings+8)
	p := filepath.Join(dir, "hagent.toml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c := hagentCmd("-config", p, "-log-level", "error")
	var logs bytes.Buffer
	c.Stderr = &logs
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Process.Kill(); _ = c.Wait() }()
	for i := 0; ; i++ { // the socket appears when the agent is ready
		if _, err := console.Call(sock, console.Request{Cmd: "show version"}, time.Second); err == nil {
			break
		}
		if i == 600 {
			t.Fatalf("hagent did not come up: %s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	pid := c.Process.Pid

	u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)}
	register := func(home netip.Addr, spi uint32, key []byte, id uint64) bool {
		r := mip.Request{Lifetime: 3600, HomeAddr: home, HomeAgent: netip.MustParseAddr("127.0.0.1"), CareOf: netip.MustParseAddr("198.51.100.7"), ID: id}
		pkt, _ := r.AppendBinary(nil)
		pkt = mip.AppendMHAuth(pkt, 0, spi, mip.NewHMACMD5(key))
		if _, err := u.WriteToUDP(pkt, to); err != nil {
			t.Fatal(err)
		}
		_ = u.SetReadDeadline(time.Now().Add(10 * time.Second)) // bounds a hang only
		buf := make([]byte, 1500)
		n, _, err := u.ReadFromUDP(buf)
		var rep mip.Reply
		return err == nil && rep.UnmarshalBinary(buf[:n]) == nil && rep.Code == mip.CodeAccepted && rep.ID == id
	}
	now := mip.Timestamp(time.Now())
	for i := range bindings {
		if !register(netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}), 400, []byte("pool-shared-key!"), now) {
			t.Fatalf("prefill registration %d refused", i)
		}
	}
	filled := vmHWM(t, pid)
	t.Logf("member with %d bindings: peak RSS %.1f MB", bindings, float64(filled)/1e6)

	// 1. One request of 256 MB without a newline.
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		for range 256 {
			if _, err := conn.Write(chunk); err != nil {
				return
			}
		}
	}()
	_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	line, _ := bufio.NewReader(conn).ReadBytes('\n')
	conn.Close()
	if !bytes.Contains(line, []byte("longer than")) {
		t.Errorf("256 MB request: answer %q", line)
	}
	t.Logf("after a 256 MB request without a newline: peak RSS %.1f MB", float64(vmHWM(t, pid))/1e6)

	// 2. 1,000 idle connections; 3. 1,000 clients asking for every row and
	// never reading, while registrations arrive.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range clients {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	t.Logf("after %d idle connections: peak RSS %.1f MB", clients, float64(vmHWM(t, pid))/1e6)
	for _, c := range conns {
		c.Close()
	}
	conns = conns[:0]
	req := []byte(`{"cmd":"show bindings","limit":-1}` + "\n")
	for range clients {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		_, _ = c.Write(req)
	}
	ok := 0
	id := mip.Timestamp(time.Now())
	for i := range clients {
		if register(netip.MustParseAddr("127.0.0.10"), 256, []byte("0123456789abcdef"), id+uint64(i+1)<<12) {
			ok++
		}
	}
	peak := vmHWM(t, pid)
	t.Logf("after %d clients asking for all %d rows and never reading: peak RSS %.1f MB; %d of %d registrations answered 0",
		clients, bindings, float64(peak)/1e6, ok, clients)
	if ok != clients {
		t.Errorf("%d of %d registrations answered during the flood", ok, clients)
	}
	if peak > peakLimit {
		t.Errorf("peak RSS %d MB, want at most %d MB", peak>>20, peakLimit>>20)
	}
	if strings.Contains(logs.String(), "panic") {
		t.Errorf("hagent log: %s", logs.String())
	}
	_ = c.Process.Signal(syscall.SIGTERM)
}
