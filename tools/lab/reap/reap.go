// Package reap ties what a test run creates to the run's life, so that a
// run killed halfway (`go test` timed out, ^C twice, SIGKILL) leaves nothing
// running and nothing behind for long:
//
//   - Start starts a child process that the kernel kills (SIGKILL) when this
//     process dies, however it dies (PR_SET_PDEATHSIG);
//   - ExitWithParent makes a test binary exit when the `go test` command
//     running it is killed (it would run on, adopted by init);
//   - Tag names what a run creates after its process ID; Netns and Dirs
//     (TempDir) remove the network namespaces and temporary directories of
//     runs whose process is gone — never those of a live run (other test
//     processes share this machine), never a name without our tag.
//
// The parent-death signal fires when the THREAD that forked the child
// exits, not the process. Go keeps its threads alive, except one a
// goroutine locked (runtime.LockOSThread) and left without unlocking: the
// runtime then ends that thread, and a child forked on it would be killed
// with it (helpers that switch network namespaces do exactly that on
// error). So Start forks on one thread of its own, locked by a goroutine
// that never returns: that thread lives as long as the process.
// TestStartOutlivesTheCallersThread shows both sides.
package reap

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var spawner struct {
	once sync.Once
	reqs chan func()
}

// onSpawnThread runs fn on the spawning thread.
func onSpawnThread(fn func()) {
	spawner.once.Do(func() {
		spawner.reqs = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked, never returns
			for f := range spawner.reqs {
				f()
			}
		}()
	})
	done := make(chan struct{})
	spawner.reqs <- func() { fn(); close(done) }
	<-done
}

// Start starts cmd (like cmd.Start) with SIGKILL as its parent-death
// signal, keeping the rest of cmd.SysProcAttr. The signal survives exec (a
// child that execs another program, as nsenter does, passes it on) but not a
// fork of the child's own: a daemon that forks must be run in the
// foreground (keepalived -n). The child starts in the network namespace the
// spawning thread has, this process's own, even when the caller's thread
// was switched into another: place it with nsenter or ip netns exec.
func Start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	var err error
	onSpawnThread(func() { err = cmd.Start() })
	return err
}

// Run is cmd.Run through Start.
func Run(cmd *exec.Cmd) error {
	if err := Start(cmd); err != nil {
		return err
	}
	return cmd.Wait()
}

// CombinedOutput is cmd.CombinedOutput through Start.
func CombinedOutput(cmd *exec.Cmd) ([]byte, error) {
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := Run(cmd)
	return b.Bytes(), err
}

// Tag is the start of every name this process gives what it creates:
// kind, "p", and the process ID ("hlp12345"). Netns(kind) recognises it.
func Tag(kind string) string { return kind + "p" + strconv.Itoa(os.Getpid()) }

// netnsDir is where `ip netns` keeps its names.
const netnsDir = "/var/run/netns"

// Netns deletes the network namespaces tagged by Tag(kind) whose creating
// process has ended, and returns their names. Namespaces of live
// processes, and names without the tag, are left alone.
func Netns(kind string) ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reap: listing %s: %w", netnsDir, err)
	}
	var gone []string
	var errs []string
	for _, e := range ents {
		pid, ok := taggedPID(e.Name(), kind)
		if !ok || pid == os.Getpid() {
			continue
		}
		if Alive(pid) {
			continue
		}
		if out, err := exec.Command("ip", "netns", "del", e.Name()).CombinedOutput(); err != nil {
			if _, serr := os.Stat(netnsDir + "/" + e.Name()); os.IsNotExist(serr) {
				continue // another run reaped it first
			}
			errs = append(errs, fmt.Sprintf("ip netns del %s: %v: %s", e.Name(), err, bytes.TrimSpace(out)))
			continue
		}
		gone = append(gone, e.Name())
	}
	if len(errs) > 0 {
		return gone, fmt.Errorf("reap: %s", strings.Join(errs, "; "))
	}
	return gone, nil
}

// taggedPID parses the PID out of a name that starts with Tag(kind) for
// some PID: kind, "p", digits, then the end or a non-digit.
func taggedPID(name, kind string) (int, bool) {
	rest, ok := strings.CutPrefix(name, kind+"p")
	if !ok {
		return 0, false
	}
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 || n > 9 {
		return 0, false
	}
	pid, err := strconv.Atoi(rest[:n])
	return pid, err == nil && pid > 0
}

// Alive reports whether process pid runs (a zombie does not). A PID that
// cannot be examined counts as alive: reaping errs on the side of leaving
// things. A PID reused by another process keeps a dead run's leftovers
// until that process ends too: comparing start times would reap sooner,
// but a wall-clock step could then make a live run look like a dead one.
func Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !os.IsNotExist(err)
	}
	// The command name is in parentheses and may hold anything: the state
	// comes after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return true
	}
	f := strings.Fields(string(b[i+1:]))
	return len(f) == 0 || (f[0] != "Z" && f[0] != "X")
}

// Dirs removes the directories directly under the system's temporary
// directory whose names start with Tag(kind) of a process that has ended,
// and returns their paths: what a killed run could not remove itself.
func Dirs(kind string) []string {
	tmp := os.TempDir()
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return nil
	}
	var gone []string
	for _, e := range ents {
		pid, ok := taggedPID(e.Name(), kind)
		if !ok || !e.IsDir() || pid == os.Getpid() {
			continue
		}
		if Alive(pid) {
			continue
		}
		p := tmp + "/" + e.Name()
		if os.RemoveAll(p) == nil {
			gone = append(gone, p)
		}
	}
	return gone
}

// TempDir makes a temporary directory named after this process
// (Tag(kind) + "-" + random), having removed those of ended processes
// first: a run killed before its deferred removal leaves its directory to
// the next run of the same kind.
func TempDir(kind string) (string, error) {
	Dirs(kind)
	return os.MkdirTemp("", Tag(kind)+"-")
}

// ExitWithParent makes this process exit (status 3) within about a second
// of its parent's death. A test binary needs it: when the `go test` command
// that runs it is killed, the binary is not (measured: it ran on, adopted
// by init, with a benchmark's agents, until its benchmark ended). Exiting
// takes what Start started with it, and the next lab removes what is left.
// Nothing happens when the parent is already init (a daemon by choice).
func ExitWithParent() {
	parent := os.Getppid()
	if parent == 1 {
		return
	}
	go func() {
		for range time.Tick(time.Second) {
			if os.Getppid() != parent {
				fmt.Fprintf(os.Stderr, "reap: parent process %d died; exiting (what this process started dies with it)\n", parent)
				os.Exit(3)
			}
		}
	}()
}
