package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/console"
)

// fakeAgent answers console requests with canned responses.
func fakeAgent(t *testing.T, answer func(console.Request) console.Response) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "c.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadBytes('\n')
			var req console.Request
			_ = json.Unmarshal(line, &req)
			b, _ := json.Marshal(answer(req))
			_, _ = c.Write(append(b, '\n'))
			c.Close()
		}
	}()
	return sock
}

func TestShowBindingsTable(t *testing.T) {
	var got console.Request
	sock := fakeAgent(t, func(r console.Request) console.Response {
		got = r
		return console.Response{Bindings: &console.Bindings{Live: 1, Capacity: 10, TombCap: 4, Rows: []console.Binding{
			{Home: "192.0.2.10", CareOf: "198.51.100.7", HomeAgent: "192.0.2.1", State: "live", Granted: 600, Remaining: 599, Flags: "T", ID: 0xe9a1b2c300000001, Node: "mn1"},
		}}}
	})
	var out, errb bytes.Buffer
	if code := run([]string{"-socket", sock, "show", "bindings", "192.0.2.10"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if got.Cmd != "show bindings" || len(got.Args) != 1 || got.Args[0] != "192.0.2.10" {
		t.Fatalf("request sent: %+v", got)
	}
	for _, want := range []string{"1 live of 10", "HOME", "192.0.2.10", "198.51.100.7", "600s", "599s", "0xe9a1b2c300000001", "mn1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestErrorsAndJSON(t *testing.T) {
	sock := fakeAgent(t, func(r console.Request) console.Response {
		if r.Cmd == "clear binding" {
			return console.Response{Error: "clear binding: no binding for 192.0.2.99"}
		}
		return console.Response{Stats: &console.Stats{Uptime: "1s", Replies: []console.Counter{{Name: "0 accepted", Value: 3}}}}
	})
	var out, errb bytes.Buffer
	if code := run([]string{"-socket", sock, "clear", "binding", "192.0.2.99"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no binding") {
		t.Fatalf("agent error: exit %d stderr %q", code, errb.String())
	}
	out.Reset()
	if code := run([]string{"-socket", sock, "-json", "show", "stats"}, &out, &errb); code != 0 {
		t.Fatalf("-json: exit %d", code)
	}
	var resp console.Response
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil || resp.Stats == nil || resp.Stats.Replies[0].Value != 3 {
		t.Fatalf("-json output: %v %s", err, out.String())
	}
	if code := run([]string{"-socket", filepath.Join(t.TempDir(), "none.sock"), "show", "stats"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "is hagent running") {
		t.Fatalf("no agent: exit %d stderr %q", code, errb.String())
	}
	if code := run([]string{"show"}, &out, &errb); code != 2 {
		t.Fatalf("incomplete command: exit %d, want 2", code)
	}
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-h"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "show redundancy") || errb.Len() != 0 {
		t.Fatalf("-h: exit %d, stdout %q, stderr %q; want 0, the usage on stdout only", code, out.String(), errb.String())
	}
	// A typo is a usage error before any dialling: no agent runs here.
	for _, args := range [][]string{{"show", "foo"}, {"show"}, {}, {"clear", "binding"}, {"show", "stats", "x"}, {"-bogus"}} {
		out.Reset()
		errb.Reset()
		code := run(append([]string{"-socket", "/nonexistent/hagent.sock"}, args...), &out, &errb)
		if code != 2 || strings.Contains(errb.String(), "cannot reach") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a usage error", args, code, errb.String())
		}
	}
	errb.Reset()
	run([]string{"show", "foo"}, &out, &errb)
	if !strings.Contains(errb.String(), `unknown command "show foo"`) || !strings.Contains(errb.String(), "show bindings, show stats, show redundancy, show version, clear binding") {
		t.Fatalf("unknown command: %q does not name the valid ones", errb.String())
	}
}

func TestCannotReach(t *testing.T) {
	dir := t.TempDir()
	// A socket file nobody listens on: what a hagent killed with SIGKILL leaves.
	stale := filepath.Join(dir, "stale.sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: stale}); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ socket, want string }{
		{filepath.Join(dir, "none.sock"), ": no such file (is hagent running? -socket PATH to use another)"},
		{stale, ": connection refused (the socket exists but nobody listens"},
		{plain, ": not a socket"},
	} {
		var out, errb bytes.Buffer
		code := run([]string{"-socket", c.socket, "show", "stats"}, &out, &errb)
		want := "hactl: cannot reach the agent at " + c.socket + c.want
		if code != 1 || !strings.HasPrefix(errb.String(), want) || strings.Contains(errb.String(), "dial unix") {
			t.Errorf("exit %d, stderr %q; want 1 and %q", code, errb.String(), want)
		}
	}
	// Root reaches any socket, so permission denied is checked on the error.
	err = fmt.Errorf("console: cannot reach the agent at /run/hagent.sock: %w", &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EACCES)})
	if got := callError("/run/hagent.sock", time.Second, err); got != "cannot reach the agent at /run/hagent.sock: permission denied (run hactl as root)" {
		t.Fatalf("EACCES: %q", got)
	}
}
