package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hagent/hagent/tools/lab/reap"
)

// NIC is one guest network card: Netdev is QEMU's -netdev value without the
// id (e.g. "user,net=192.0.2.0/24" or "tap,ifname=t0,script=no,downscript=no").
type NIC struct {
	Netdev string
	MAC    string // "" lets QEMU pick (then two guests on one LAN collide)
}

// Options describe one guest.
type Options struct {
	Image  Image
	Name   string   // for logs
	Append []string // extra kernel parameters, e.g. hagent.ip=eth0:192.0.2.2/24
	NICs   []NIC
	Netns  string    // start QEMU inside this network namespace (its taps live there)
	Log    io.Writer // a copy of everything the serial console prints
	// Stdio hands QEMU the caller's terminal (interactive `make boot`); the
	// console methods are then unavailable.
	Stdio bool
}

// QEMUArgs returns the emulator and its arguments for o.
func QEMUArgs(o Options) (string, []string) {
	b := o.Image.Board
	args := append([]string{}, b.Machine...)
	args = append(args, "-m", strconv.Itoa(b.MemMiB), "-display", "none", "-no-reboot",
		"-kernel", o.Image.Kernel, "-initrd", o.Image.Initrd)
	if o.Stdio {
		args = append(args, "-serial", "mon:stdio")
	} else {
		args = append(args, "-monitor", "none", "-serial", "stdio")
	}
	// panic=1 with -no-reboot: a kernel panic ends QEMU instead of hanging.
	cmdline := append([]string{"console=" + b.Console, "panic=1", "quiet"}, o.Append...)
	args = append(args, "-append", strings.Join(cmdline, " "))
	if len(o.NICs) == 0 {
		args = append(args, "-nic", "none")
	}
	for i, n := range o.NICs {
		id := "n" + strconv.Itoa(i)
		dev := b.NICModel + ",netdev=" + id
		if n.MAC != "" {
			dev += ",mac=" + n.MAC
		}
		args = append(args, "-netdev", n.Netdev+",id="+id, "-device", dev)
	}
	name := b.QEMU
	if o.Netns != "" {
		args = append([]string{"netns", "exec", o.Netns, name}, args...)
		name = "ip"
	}
	return name, args
}

// Machine is a running guest and its serial console.
type Machine struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
	err   error // QEMU's exit, valid after done

	mu     sync.Mutex
	buf    []byte
	pos    int           // console read position of Expect
	notify chan struct{} // closed and replaced on every new output
	seq    int
}

// Start boots a guest. The caller must Kill or Poweroff it (t.Cleanup).
func Start(ctx context.Context, o Options) (*Machine, error) {
	name, args := QEMUArgs(o)
	cmd := exec.Command(name, args...) // not CommandContext: Kill is by PID, explicit
	m := &Machine{name: o.Name, cmd: cmd, done: make(chan struct{}), notify: make(chan struct{})}
	if o.Stdio {
		return nil, errors.New("vm: Start with Stdio: use Interactive")
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	m.stdin = stdin
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	// Own process group: a Ctrl-C on the test's terminal is for the test.
	// Killed by the kernel if this process dies without Kill (ip netns exec
	// execs QEMU in place, which keeps the parent-death signal).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := reap.Start(cmd); err != nil {
		return nil, fmt.Errorf("vm: starting %s: %w", name, err)
	}
	go func() {
		m.err = cmd.Wait()
		pw.Close()
	}()
	go func() {
		defer close(m.done)
		b := make([]byte, 4096)
		for {
			n, err := pr.Read(b)
			if n > 0 {
				chunk := strings.ReplaceAll(string(b[:n]), "\r", "")
				if o.Log != nil {
					_, _ = io.WriteString(o.Log, chunk)
				}
				m.mu.Lock()
				m.buf = append(m.buf, chunk...)
				close(m.notify)
				m.notify = make(chan struct{})
				m.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	return m, nil
}

// Interactive runs QEMU on the caller's terminal until it exits.
func Interactive(o Options, stdin io.Reader, stdout io.Writer) error {
	o.Stdio = true
	name, args := QEMUArgs(o)
	cmd := exec.Command(name, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stdout
	return reap.Run(cmd)
}

// PID is QEMU's process id (ip netns exec execs QEMU in place).
func (m *Machine) PID() int { return m.cmd.Process.Pid }

// Output is everything the console printed so far.
func (m *Machine) Output() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return string(m.buf)
}

// Expect waits until re matches console output after the last match and
// returns the submatches. It fails when ctx ends or QEMU exits first.
func (m *Machine) Expect(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	for {
		m.mu.Lock()
		loc := re.FindSubmatchIndex(m.buf[m.pos:])
		if loc != nil {
			sub := make([]string, len(loc)/2)
			for i := range sub {
				if loc[2*i] >= 0 {
					sub[i] = string(m.buf[m.pos+loc[2*i] : m.pos+loc[2*i+1]])
				}
			}
			m.pos += loc[1]
			m.mu.Unlock()
			return sub, nil
		}
		ch := m.notify
		m.mu.Unlock()
		select {
		case <-ch:
		case <-m.done:
			// Drain: the last chunk may hold the match.
			m.mu.Lock()
			loc := re.FindIndex(m.buf[m.pos:])
			m.mu.Unlock()
			if loc != nil {
				continue
			}
			return nil, fmt.Errorf("vm %s: QEMU exited (%v) before the console printed %q", m.name, m.err, re)
		case <-ctx.Done():
			return nil, fmt.Errorf("vm %s: console did not print %q: %w", m.name, re, ctx.Err())
		}
	}
}

// ExpectAny waits for the first of several literal strings and returns it.
func (m *Machine) ExpectAny(ctx context.Context, s ...string) (string, error) {
	q := make([]string, len(s))
	for i := range s {
		q[i] = regexp.QuoteMeta(s[i])
	}
	sub, err := m.Expect(ctx, regexp.MustCompile(strings.Join(q, "|")))
	if err != nil {
		return "", err
	}
	return sub[0], nil
}

// Send types a line on the console.
func (m *Machine) Send(line string) error {
	_, err := io.WriteString(m.stdin, line+"\n")
	return err
}

// Run types a shell command on the console and returns what it printed and
// its exit status. Agent log lines printed meanwhile are part of the output
// (the console is shared, as on a real router); StripLogs removes them.
func (m *Machine) Run(ctx context.Context, command string) (string, int, error) {
	m.mu.Lock()
	m.seq++
	tag := "R" + strconv.Itoa(m.seq)
	// From the start of the line being printed, not from the end of the
	// buffer: a log line half printed when we type would otherwise leave
	// its tail, which no longer looks like a log line, in our output.
	start := bytes.LastIndexByte(m.buf, '\n') + 1
	m.mu.Unlock()
	// The echoed input reads @@"R1:"$?@@; only the shell's output reads @@R1:0@@.
	if err := m.Send(command + `; echo @@"` + tag + `:"$?@@`); err != nil {
		return "", -1, err
	}
	re := regexp.MustCompile(`@@` + tag + `:(\d+)@@`)
	sub, err := m.Expect(ctx, re)
	if err != nil {
		return "", -1, err
	}
	m.mu.Lock()
	out := string(m.buf[start:m.pos])
	m.mu.Unlock()
	out = out[:strings.LastIndex(out, "@@"+tag)]
	sent := command + `; echo @@"` + tag + `:"$?@@`
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		tl := strings.TrimSpace(strings.TrimPrefix(l, "$ "))
		// The echoed command (a log line may split it) and bare prompts.
		if tl == "$" || tl == "" && strings.TrimSpace(l) != "" || len(tl) >= 2 && (strings.HasSuffix(sent, tl) || strings.HasPrefix(sent, tl)) {
			continue
		}
		lines = append(lines, strings.TrimPrefix(l, "$ "))
	}
	status, _ := strconv.Atoi(sub[1])
	return strings.TrimSpace(strings.Join(lines, "\n")), status, nil
}

// Wait waits for QEMU to exit and returns its exit error (nil: status 0).
func (m *Machine) Wait(ctx context.Context) error {
	select {
	case <-m.done:
		return m.err
	case <-ctx.Done():
		return fmt.Errorf("vm %s: QEMU still running: %w", m.name, ctx.Err())
	}
}

// Exited reports whether QEMU has exited.
func (m *Machine) Exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// Poweroff stops the agent cleanly and powers the guest off (hainit
// -poweroff); QEMU must exit with status 0.
func (m *Machine) Poweroff(ctx context.Context) error {
	if m.Exited() {
		return fmt.Errorf("vm %s: already exited (%v)", m.name, m.err)
	}
	if err := m.Send("hainit -poweroff"); err != nil {
		return err
	}
	if err := m.Wait(ctx); err != nil {
		return fmt.Errorf("vm %s: power off: %w", m.name, err)
	}
	return nil
}

// Kill ends QEMU at once by its PID (a crashed router) and waits for it.
func (m *Machine) Kill() {
	if m.Exited() {
		return
	}
	_ = syscall.Kill(m.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
	}
}
