// Package lab builds throw-away network topologies out of Linux network
// namespaces for hagent's integration tests and demos: one namespace holds a
// bridge (the home LAN), every host is a namespace with a veth on it.
//
// Everything a Lab creates is named with a per-lab prefix and removed by
// Close (namespaces take their veths with them); processes it starts are
// stopped by PID. Nothing is sent anywhere but inside those namespaces.
//
// A run killed before Close leaves nothing running: processes are started
// with SIGKILL as their parent-death signal (package reap). Its namespaces
// carry its PID in their names (Prefix), and the next New of any run
// removes those of runs whose process has ended, and only those.
package lab

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/tools/lab/reap"
)

// Lab is one topology: a LAN namespace with bridge br0, and hosts.
type Lab struct {
	Prefix string
	lan    string
	nss    []string
	mu     sync.Mutex
	procs  []*Proc
	n      int
}

// Skip reports why a lab cannot be built here ("" when it can): labs need
// root and iproute2.
func Skip() string {
	if os.Geteuid() != 0 {
		return "needs root (network namespaces)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "needs iproute2 (ip)"
	}
	return ""
}

// Require skips (or, with HAGENT_TEST_STRICT=1, fails) t when a lab cannot
// be built, and under -short.
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	if why := Skip(); why != "" {
		if os.Getenv("HAGENT_TEST_STRICT") == "1" {
			t.Fatalf("HAGENT_TEST_STRICT=1 but %s", why)
		}
		t.Skip(why)
	}
}

// Kind starts every lab's Prefix: reap.Tag(Kind) then "x" and random hex,
// e.g. "hlp12345x0a1b" (the PID lets the next run tell a dead run's
// namespaces from a live one's; the hex tells this process's labs apart).
const Kind = "hl"

// New creates the LAN namespace with an up bridge br0 that floods multicast
// (snooping off: VRRP and the group protocol must reach every member).
// First it removes the namespaces that labs of ended processes left behind.
func New() (*Lab, error) {
	if _, err := reap.Netns(Kind); err != nil {
		fmt.Fprintln(os.Stderr, "lab: removing the namespaces of ended runs:", err)
	}
	var r [2]byte
	_, _ = rand.Read(r[:])
	l := &Lab{Prefix: reap.Tag(Kind) + "x" + hex.EncodeToString(r[:])}
	l.lan = l.Prefix + "-lan"
	if err := l.addNS(l.lan); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"link", "add", "br0", "type", "bridge", "mcast_snooping", "0"},
		{"link", "set", "br0", "up"},
		{"link", "set", "lo", "up"},
	} {
		if err := l.ip(l.lan, args...); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// NewT is New for tests: it fails t on error and closes the lab at cleanup.
func NewT(t testing.TB) *Lab {
	t.Helper()
	Require(t)
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func (l *Lab) addNS(ns string) error {
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return fmt.Errorf("lab: ip netns add %s: %v: %s", ns, err, bytes.TrimSpace(out))
	}
	l.nss = append(l.nss, ns)
	return nil
}

func (l *Lab) ip(ns string, args ...string) error {
	full := append([]string{"-n", ns}, args...)
	if out, err := exec.Command("ip", full...).CombinedOutput(); err != nil {
		return fmt.Errorf("lab: ip %s: %v: %s", strings.Join(full, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Host is a namespace with interface eth0 on the lab's bridge.
type Host struct {
	Lab  *Lab
	Name string
	NS   string
	Veth string // the bridge-side end, in the LAN namespace
}

// Host adds a host with the given CIDR addresses on its eth0.
func (l *Lab) Host(name string, cidrs ...string) (*Host, error) {
	l.n++
	// The veth's name only has to be unique in the lab's own LAN namespace
	// (and at most 15 bytes).
	h := &Host{Lab: l, Name: name, NS: l.Prefix + "-" + name, Veth: fmt.Sprintf("v%d%s", l.n, l.Prefix[len(l.Prefix)-4:])}
	if err := l.addNS(h.NS); err != nil {
		return nil, err
	}
	steps := []struct {
		ns   string
		args []string
	}{
		{l.lan, []string{"link", "add", h.Veth, "type", "veth", "peer", "name", "eth0", "netns", h.NS}},
		{l.lan, []string{"link", "set", h.Veth, "master", "br0", "up"}},
		{h.NS, []string{"link", "set", "lo", "up"}},
		{h.NS, []string{"link", "set", "eth0", "up"}},
	}
	for _, c := range cidrs {
		steps = append(steps, struct {
			ns   string
			args []string
		}{h.NS, []string{"addr", "add", c, "dev", "eth0"}})
	}
	for _, s := range steps {
		if err := l.ip(s.ns, s.args...); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// HostT is Host for tests.
func (l *Lab) HostT(t testing.TB, name string, cidrs ...string) *Host {
	t.Helper()
	h, err := l.Host(name, cidrs...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Command returns a command that runs inside the host's namespace. It uses
// nsenter, which execs the program itself, so the PID we hold is the
// program's (`ip netns exec` forks and would leave us signalling ip).
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + h.NS, name}, args...)...)
}

// Run runs a command in the host's namespace and returns its combined output.
func (h *Host) Run(name string, args ...string) (string, error) {
	out, err := h.Command(name, args...).CombinedOutput()
	return string(out), err
}

// IP runs `ip ARGS` in the host's namespace.
func (h *Host) IP(args ...string) error { return h.Lab.ip(h.NS, args...) }

// LinkDown and LinkUp take the host's cable out and put it back (the bridge
// side, so that the host itself sees carrier loss).
func (h *Host) LinkDown() error { return h.Lab.ip(h.Lab.lan, "link", "set", h.Veth, "down") }
func (h *Host) LinkUp() error   { return h.Lab.ip(h.Lab.lan, "link", "set", h.Veth, "up") }

// Proc is a background process started in a host, its stderr and stdout
// collected line by line.
type Proc struct {
	Cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	cond  *sync.Cond
	done  chan struct{}
	err   error
}

// Start runs a long-lived process in the host's namespace.
func (h *Host) Start(name string, args ...string) (*Proc, error) {
	cmd := h.Command(name, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	// Own process group, so that Stop reaches any children too; killed by
	// the kernel if this process dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	if err := reap.Start(cmd); err != nil {
		return nil, fmt.Errorf("lab: starting %s in %s: %w", name, h.NS, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.cond.Broadcast()
			p.mu.Unlock()
		}
	}()
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		close(p.done)
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	}()
	h.Lab.mu.Lock()
	h.Lab.procs = append(h.Lab.procs, p)
	h.Lab.mu.Unlock()
	return p, nil
}

// Output returns everything the process printed so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// WaitFor waits until a line containing s appears, the process exits, or
// the timeout passes.
func (p *Proc) WaitFor(s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	t := time.AfterFunc(timeout, func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
	defer t.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := 0
	for {
		for ; seen < len(p.lines); seen++ {
			if strings.Contains(p.lines[seen], s) {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("lab: process exited (%v) before printing %q; output:\n%s", p.err, s, strings.Join(p.lines, "\n"))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: %q not seen within %s; output:\n%s", s, timeout, strings.Join(p.lines, "\n"))
		}
		p.cond.Wait()
	}
}

// Signal sends sig to the process (by PID).
func (p *Proc) Signal(sig syscall.Signal) error {
	if p.Cmd.Process == nil {
		return errors.New("lab: process not started")
	}
	return syscall.Kill(p.Cmd.Process.Pid, sig)
}

// Stop sends SIGTERM, waits up to timeout, then SIGKILLs the process group.
func (p *Proc) Stop(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	return p.err
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Close stops every process the lab started (by PID) and deletes its
// namespaces, which removes their interfaces too.
func (l *Lab) Close() {
	l.mu.Lock()
	procs := l.procs
	l.procs = nil
	l.mu.Unlock()
	for _, p := range procs {
		_ = p.Stop(3 * time.Second)
	}
	for i := len(l.nss) - 1; i >= 0; i-- {
		_ = exec.Command("ip", "netns", "del", l.nss[i]).Run()
	}
	l.nss = nil
}
