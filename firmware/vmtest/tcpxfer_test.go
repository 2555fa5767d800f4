package vmtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/tools/lab/reap"
)

// The test binary doubles as a TCP transfer tool run inside a namespace
// (the build machines have no nc): HAGENT_VMTEST_TCP="serve,ADDR:PORT,N"
// accepts one connection, reads N bytes and writes N bytes back;
// "send,ADDR:PORT,N" connects, writes N bytes while reading N, checks
// both against the pattern and prints what it moved. Full-size segments
// both ways are what a ping does not exercise: the tunnel's MTU, the
// offloads' segmentation and checksums.
const tcpEnv = "HAGENT_VMTEST_TCP"

// tcpPattern is byte i of a transfer: not all zeros, so that a segment
// the path mangles or shifts does not pass the check.
func tcpPattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>11)
	}
	return b
}

// tcpTool runs the mode HAGENT_VMTEST_TCP names; the deadline keeps a
// black hole from hanging the test.
func tcpTool(spec string) error {
	f := strings.Split(spec, ",")
	if len(f) != 3 {
		return fmt.Errorf("%s=%q: want serve|send,ADDR:PORT,BYTES", tcpEnv, spec)
	}
	n, err := strconv.Atoi(f[2])
	if err != nil || n <= 0 {
		return fmt.Errorf("%s=%q: %q is no byte count", tcpEnv, spec, f[2])
	}
	want := tcpPattern(n)
	deadline := time.Now().Add(60 * time.Second)
	var c net.Conn
	switch f[0] {
	case "serve":
		ln, err := net.Listen("tcp4", f[1])
		if err != nil {
			return err
		}
		fmt.Println("listening")
		_ = ln.(*net.TCPListener).SetDeadline(deadline)
		c, err = ln.Accept()
		ln.Close()
		if err != nil {
			return err
		}
	case "send":
		d := net.Dialer{Deadline: deadline}
		if c, err = d.Dial("tcp4", f[1]); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s=%q: mode %q is neither serve nor send", tcpEnv, spec, f[0])
	}
	defer c.Close()
	_ = c.SetDeadline(deadline)
	start := time.Now()
	got := make([]byte, n)
	read := make(chan error, 1)
	var r int
	go func() {
		var err error
		r, err = io.ReadFull(c, got)
		read <- err
	}()
	w, werr := c.Write(want)
	rerr := <-read
	if werr != nil || rerr != nil {
		return fmt.Errorf("%s %s: wrote %d of %d bytes (%v), read %d of %d (%v) in %v", f[0], f[1], w, n, werr, r, n, rerr, time.Since(start).Round(time.Millisecond))
	}
	if i := mismatch(got, want); i >= 0 {
		return fmt.Errorf("%s %s: byte %d of %d differs", f[0], f[1], i, n)
	}
	fmt.Printf("%s %s: %d bytes each way in %v\n", f[0], f[1], n, time.Since(start).Round(time.Millisecond))
	return nil
}

func mismatch(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}

// tcpTransfer moves n bytes each way between a server in serverNS on
// addr:port and a client in clientNS, and returns the client's line, or
// an error with both sides' output.
func tcpTransfer(t testing.TB, serverNS, clientNS, addr string, port, n int) (string, error) {
	t.Helper()
	hostport := fmt.Sprintf("%s:%d", addr, port)
	srv := &proc{}
	srv.cmd = exec.Command("ip", "netns", "exec", serverNS, os.Args[0], "-test.run=^$")
	srv.cmd.Env = append(os.Environ(), fmt.Sprintf("%s=serve,%s,%d", tcpEnv, hostport, n))
	srv.cmd.Stdout, srv.cmd.Stderr = srv, srv
	if err := reap.Start(srv.cmd); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = srv.cmd.Process.Kill()
		_ = srv.cmd.Wait()
	}()
	for i := 0; !strings.Contains(srv.Output(), "listening"); i++ {
		if i == 100 {
			t.Fatalf("the TCP server in %s did not listen on %s:\n%s", serverNS, hostport, srv.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", clientNS, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=send,%s,%d", tcpEnv, hostport, n))
	out, err := cmd.CombinedOutput()
	if err != nil {
		_ = srv.cmd.Process.Kill()
		_ = srv.cmd.Wait()
		return "", fmt.Errorf("client: %v\n%s\nserver:\n%s", err, out, srv.Output())
	}
	return strings.TrimSpace(string(out)), nil
}
