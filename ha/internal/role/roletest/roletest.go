//go:build linux

// Package roletest is what the VRRP and HSRP netns tests share: skipping
// (or, under HAGENT_TEST_STRICT=1, failing) without a prerequisite, a
// role.Elector run by the test binary itself in a helper process inside a
// tools/lab host, and watching which host holds the virtual address.
// Imported by tests only.
package roletest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/role"
	"github.com/hagent/hagent/tools/lab"
)

// Need skips t (or, under HAGENT_TEST_STRICT=1, fails it) when ok is
// false: a prerequisite such as keepalived or tshark is missing.
func Need(t testing.TB, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("HAGENT_TEST_STRICT") == "1" {
		t.Fatal("prerequisite missing: " + why)
	}
	t.Skip("prerequisite missing: " + why)
}

// Have reports whether bin is installed.
func Have(bin string) bool { _, err := exec.LookPath(bin); return err == nil }

const helperEnv = "HAGENT_ROLE_HELPER"

// Helper skips t unless it runs as the helper process Start started: a
// helper test is not a test of its own.
func Helper(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process, started by the netns tests")
	}
}

// Serve is the rest of a helper test once it has built its runner (or
// failed to, err): it prints "ROLE <role> <state> <reason>" for every
// change, runs e until SIGTERM or SIGINT (e resigns), prints
// "STATS <stats()>" and exits 0; "ERR <err>" and exit 1 if either fails.
func Serve(e role.Elector, err error, stats func() any) {
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		for c := range e.Changes() {
			fmt.Printf("ROLE %s %s %s\n", c.Role, c.State, c.Reason)
		}
	}()
	if err := e.Run(ctx); err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Printf("STATS %+v\n", stats())
	os.Exit(0)
}

// Start runs the helper test named test (which calls Helper, then Serve)
// in h's namespace with env added, and logs its output as tag when t ends.
// Stop it with Stop; the lab stops it (by PID) if the test does not.
func Start(t *testing.T, h *lab.Host, test, tag string, env ...string) *lab.Proc {
	t.Helper()
	args := append([]string{helperEnv + "=1"}, env...)
	p, err := h.Start("env", append(args, os.Args[0], "-test.run=^"+test+"$", "-test.v")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { t.Logf("%s:\n%s", tag, p.Output()) })
	return p
}

// Stop signals p (SIGKILL: a crash; SIGTERM: resign) and waits until it
// has exited; an exited p is not signalled (its PID may be reused).
func Stop(p *lab.Proc, sig syscall.Signal) {
	select {
	case <-p.Done():
		return
	default:
	}
	_ = p.Signal(sig)
	<-p.Done()
}

// Holds reports whether h's eth0 has the address vip.
func Holds(h *lab.Host, vip string) bool {
	out, _ := exec.Command("ip", "-n", h.NS, "-4", "addr", "show", "dev", "eth0").Output()
	return strings.Contains(string(out), " "+vip+"/")
}

// WaitOnly waits until who holds vip and other does not, and returns how
// long that took; it fails t after within.
func WaitOnly(t testing.TB, vip string, who, other *lab.Host, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if Holds(who, vip) && !Holds(other, vip) {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("after %v: want only %s to hold %s; %s=%v %s=%v", within, who.Name, vip,
		who.Name, Holds(who, vip), other.Name, Holds(other, vip))
	return 0
}
