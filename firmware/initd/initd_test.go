package initd

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseCmdline(t *testing.T) {
	b, err := ParseCmdline(`console=ttyAMA0 quiet hagent.ip=eth0:192.0.2.10/24,eth1:198.51.100.2/24 hagent.ip=eth2:10.0.0.1/8 hagent.gw=192.0.2.1 hagent.hostname=ha1 "hagent.config=/etc/x.toml" hagent.run=0` + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Addrs) != 3 || b.Addrs[1].Iface != "eth1" || b.Addrs[1].Prefix.String() != "198.51.100.2/24" ||
		b.Gateway.String() != "192.0.2.1" || b.Hostname != "ha1" || b.Config != "/etc/x.toml" || !b.NoAgent {
		t.Fatalf("got %+v", b)
	}
	d, err := ParseCmdline("console=ttyS0")
	if err != nil || d.Config != DefaultConfig || d.NoAgent || len(d.Addrs) != 0 {
		t.Fatalf("defaults: %+v %v", d, err)
	}
	for _, bad := range []string{"hagent.ip=eth0", "hagent.ip=eth0:1.2.3.4", "hagent.ip=:1.2.3.4/8", "hagent.gw=x", "hagent.config=rel", "hagent.bogus=1"} {
		if _, err := ParseCmdline(bad); err == nil || !strings.Contains(err.Error(), "hagent.") {
			t.Errorf("%s: err %v", bad, err)
		}
	}
}

func TestPlanNet(t *testing.T) {
	b, _ := ParseCmdline("hagent.ip=eth0:192.0.2.10/24,eth3:10.1.1.1/16 hagent.gw=192.0.2.1")
	got := PlanNet([]string{"eth0", "eth1"}, b)
	want := NetPlan{
		{"link", "set", "dev", "eth0", "up"},
		{"link", "set", "dev", "eth1", "up"},
		{"link", "set", "dev", "eth3", "up"},
		{"addr", "add", "192.0.2.10/24", "dev", "eth0"},
		{"addr", "add", "10.1.1.1/16", "dev", "eth3"},
		{"route", "add", "default", "via", "192.0.2.1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
}

func TestBackoff(t *testing.T) {
	p := Backoff{Min: time.Second, Max: 5 * time.Second, Stable: time.Minute}
	var d time.Duration
	var got []time.Duration
	for range 5 {
		d = p.Next(d, time.Millisecond)
		got = append(got, d)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("crash loop: got %v want %v", got, want)
	}
	if n := p.Next(5*time.Second, 2*time.Minute); n != time.Second {
		t.Fatalf("after a stable run: %v, want Min", n)
	}
}

// The test binary is its own child: HAGENT_INITD_CHILD selects the behaviour.
func TestMain(m *testing.M) {
	switch os.Getenv("HAGENT_INITD_CHILD") {
	case "crash":
		fmt.Fprintln(os.Stderr, "child: crashing")
		os.Exit(3)
	case "serve":
		fmt.Fprintln(os.Stderr, "child: serving")
		time.Sleep(time.Minute) // killed by SIGTERM's default action
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestSupervisorRestartsAndStops(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	var out syncBuf
	log := slog.New(slog.NewTextHandler(&out, nil))
	pids := make(chan int, 16)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Supervisor{
		Path: os.Args[0], Args: []string{"-test.run=^$"},
		Env:    append(os.Environ(), "HAGENT_INITD_CHILD=crash"),
		Stdout: &out, Stderr: &out, Log: log,
		Policy:      Backoff{Min: time.Millisecond, Max: 4 * time.Millisecond, Stable: time.Minute},
		StopTimeout: 5 * time.Second,
		Started:     func(pid int) { pids <- pid },
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	// Four starts: a child is only restarted after it exited, so by the
	// fourth start three children have printed (the fourth may be stopped
	// before it prints anything — that raced on a loaded CI machine).
	for range 4 {
		select {
		case <-pids:
		case <-time.After(20 * time.Second):
			t.Fatalf("no restart; log:\n%s", out.String())
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "child: crashing"); n < 3 {
		t.Fatalf("child output not on the console (%d):\n%s", n, out.String())
	}

	// A healthy child is stopped with SIGTERM when the context ends.
	out = syncBuf{}
	ctx, cancel = context.WithCancel(context.Background())
	s.Env = append(os.Environ(), "HAGENT_INITD_CHILD=serve")
	go func() { errc <- s.Run(ctx) }()
	<-pids
	for !strings.Contains(out.String(), "child: serving") {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `msg="hainit: agent stopped"`) || !strings.Contains(out.String(), "signal: terminated") {
		t.Fatalf("stop not logged:\n%s", out.String())
	}
}
