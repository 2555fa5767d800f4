package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"

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
