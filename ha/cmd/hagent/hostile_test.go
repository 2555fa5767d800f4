package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/config/hostiletoml"
	"github.com/hagent/hagent/ha/internal/console"
)

// The tests below run hagent as a child process (this test binary, re-run
// with childEnv set, is hagent) so that they can measure its peak memory:
// the kernel's rusage of the child, a measurement rather than a timing.
const childEnv = "HAGENT_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// peakLimit is the promise of docs/config.md: whatever the file, checking
// or reloading it keeps the process under 64 MB.
const peakLimit = 64 << 20

func hagentCmd(args ...string) *exec.Cmd {
	c := exec.Command(os.Args[0], args...)
	c.Env = append(os.Environ(), childEnv+"=1")
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return c
}

// TestCheckHostileFiles runs `hagent -check` on every hostile shape and on a
// legitimate 10,000-node file, and asserts the refusal (file:line and what
// to do) and the child's peak RSS. That figure is an upper bound: Linux
// carries the test process's own peak into a child it forks (about 20-35
// MB). HAGENT_HOSTILE_DIR=dir keeps the files there, for
// `/usr/bin/time -f %M hagent -check -config dir/FILE` on the real binary
// (docs/config.md).
func TestCheckHostileFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("runs this binary as hagent in a child process (make test-mips runs -short under qemu-user, which cannot exec it)")
	}
	dir := os.Getenv("HAGENT_HOSTILE_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	refused := len(hostiletoml.Files())
	for i, h := range append(hostiletoml.Files(), hostiletoml.WithinBounds()...) {
		// The bounds refuse the first ones in one short line; the others
		// are parsed whole and draw at most 50 problems and a count.
		maxErr := 1000
		if i >= refused {
			maxErr = 51 * 300
		}
		p := filepath.Join(dir, h.Name+".toml")
		if err := os.WriteFile(p, h.Text, 0o600); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		c := hagentCmd("-check", "-config", p)
		c.Stderr = &stderr
		err := c.Run()
		rss := maxRSS(c)
		t.Logf("%-20s %8d bytes  peak RSS %5.1f MB", h.Name, len(h.Text), float64(rss)/1e6)
		if c.ProcessState == nil || c.ProcessState.ExitCode() != 1 {
			t.Errorf("%s: %v, want exit 1", h.Name, err)
		}
		where := p + ":" + strconv.Itoa(h.Line) + ": "
		if h.Line == 0 {
			where = p + ": "
		}
		if got := stderr.String(); !strings.Contains(got, where) || !strings.Contains(got, h.Want) || len(got) > maxErr {
			t.Errorf("%s: stderr of %d bytes %.400q\nwant at most %d bytes, at %q saying %q", h.Name, len(got), got, maxErr, where, h.Want)
		}
		if rss > peakLimit {
			t.Errorf("%s: peak RSS %d MB, want at most %d MB", h.Name, rss>>20, peakLimit>>20)
		}
	}
	p := filepath.Join(dir, "nodes-10000.toml")
	if err := os.WriteFile(p, nodesConfig(10000), 0o600); err != nil {
		t.Fatal(err)
	}
	c := hagentCmd("-check", "-config", p)
	out, err := c.CombinedOutput()
	rss := maxRSS(c)
	t.Logf("%-20s %8d bytes  peak RSS %5.1f MB (valid)", "nodes-10000", len(nodesConfig(10000)), float64(rss)/1e6)
	if err != nil {
		t.Fatalf("10,000 nodes: %v\n%s", err, out)
	}
	if rss > peakLimit {
		t.Errorf("10,000 nodes: peak RSS %d MB, want at most %d MB", rss>>20, peakLimit>>20)
	}
}

// maxRSS is the child's peak resident set in bytes (Linux reports KiB).
func maxRSS(c *exec.Cmd) int64 {
	if c.ProcessState == nil {
		return 0
	}
	ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	return int64(ru.Maxrss) << 10 // int32 on 32-bit targets
}

func nodesConfig(n int) []byte {
	var b strings.Builder
	b.WriteString("[agent]\ninterface = \"eth0\"\naddress = \"10.0.0.1\"\nhome_network = \"10.0.0.0/8\"\ncapacity = 10000\n[datapath]\nproxy_arp_mode = \"interface\"\n")
	for i := range n {
		fmt.Fprintf(&b, "[[node]]\nhome_address = \"10.%d.%d.%d\"\nnai = \"mn%d@example.net\"\nspi = %d\nkey = \"hex:8899aabbccddeeff0011223344556677\"\n",
			1+i/65536, i/256%256, i%256, i, 256+i)
	}
	return []byte(b.String())
}

// TestReloadHostileFiles starts hagent, replaces its configuration with each
// hostile shape and sends SIGHUP: every reload is refused with the reason,
// the agent keeps serving on the old configuration, and its peak RSS over
// all of them stays under the limit.
func TestReloadHostileFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("runs this binary as hagent in a child process (make test-mips runs -short under qemu-user, which cannot exec it)")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "hagent.sock")
	port := freeUDPPort(t)
	good := fmt.Sprintf("[agent]\ninterface = \"lo\"\naddress = \"127.0.0.1\"\nhome_network = \"127.0.0.0/8\"\nlisten_port = %d\nconsole_socket = %q\ncapacity = 1000\n[datapath]\nenabled = false\n[[node]]\nname = \"mn1\"\nhome_address = \"127.0.0.10\"\nspi = 256\nkey = \"text:0123456789abcdef\"\n", port, sock)
	p := filepath.Join(dir, "hagent.toml")
	if err := os.WriteFile(p, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	c := hagentCmd("-config", p)
	stderr, err := c.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Process.Kill(); _ = c.Wait() }()
	lines := make(chan string, 100)
	go func() {
		s := bufio.NewScanner(stderr)
		s.Buffer(make([]byte, 64<<10), 1<<20)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	waitLine := func(what string) string {
		t.Helper()
		deadline := time.After(60 * time.Second) // a bound on a hang, not a performance goal
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("hagent exited while waiting for %q", what)
				}
				if strings.Contains(l, what) {
					return l
				}
			case <-deadline:
				t.Fatalf("no %q from hagent", what)
			}
		}
	}
	waitLine("hagent ready")
	before := vmHWM(t, c.Process.Pid)
	for _, h := range append(hostiletoml.Files(), hostiletoml.WithinBounds()...) {
		if err := os.WriteFile(p, h.Text, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := c.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		l := waitLine("reload refused")
		if !strings.Contains(l, h.Want) || len(l) > 51*300 {
			t.Errorf("%s: log line of %d bytes %.300q, want a bounded one saying %q", h.Name, len(l), l, h.Want)
		}
		t.Logf("%-20s peak RSS so far %5.1f MB", h.Name, float64(vmHWM(t, c.Process.Pid))/1e6)
	}
	peak := vmHWM(t, c.Process.Pid)
	t.Logf("peak RSS: %.1f MB at start, %.1f MB after all reloads", float64(before)/1e6, float64(peak)/1e6)
	if peak > peakLimit {
		t.Errorf("peak RSS %d MB, want at most %d MB", peak>>20, peakLimit>>20)
	}
	resp, err := console.Call(sock, console.Request{Cmd: "show version"}, 5*time.Second)
	if err != nil || resp.Info == nil || resp.Info.Nodes != 1 {
		t.Fatalf("after the refused reloads: %+v %v; want the agent serving its one node", resp, err)
	}
}

// vmHWM is a process's peak resident set so far, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/pid/status")
	return 0
}

func freeUDPPort(t *testing.T) uint16 {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}
