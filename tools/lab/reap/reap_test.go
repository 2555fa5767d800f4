package reap

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gone waits until pid is no process (or a zombie) any more.
func gone(pid int, within time.Duration) bool {
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if !Alive(pid) {
			return true
		}
	}
	return false
}

// The kernel's side, shown: a child forked with a parent-death signal on a
// thread that then ends dies with the thread, although the process lives
// on. Start's child, forked on its own thread, does not.
func TestStartOutlivesTheCallersThread(t *testing.T) {
	// Hold this goroutine's thread (perhaps the main thread, which the
	// runtime never ends), so that the goroutines below run on others.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := func(viaStart bool) *exec.Cmd {
		// The runtime never ends the main thread (it parks a goroutine that
		// exits locked to it instead): a goroutine that lands there tries
		// again, or the plain child would outlive the test's expectation.
		for range 100 {
			cmd := exec.Command("sleep", "30")
			done := make(chan error)
			go func() {
				runtime.LockOSThread() // never unlocked: the runtime ends this thread when the goroutine returns
				if syscall.Gettid() == syscall.Getpid() {
					runtime.UnlockOSThread()
					done <- errMainThread
					return
				}
				if viaStart {
					done <- Start(cmd)
					return
				}
				cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
				done <- cmd.Start()
			}()
			err := <-done
			if err == errMainThread {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			return cmd
		}
		t.Fatal("every goroutine ran on the main thread")
		return nil
	}
	plain := start(false)
	ours := start(true)
	defer func() {
		_ = ours.Process.Kill()
		_ = ours.Wait()
	}()
	err := plain.Wait()
	if ws, ok := plain.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child forked on an ending thread: %v, want killed by SIGKILL (the kernel's parent-death semantics changed?)", err)
	}
	time.Sleep(200 * time.Millisecond)
	if !Alive(ours.Process.Pid) {
		t.Fatal("Start's child died with the thread of its caller")
	}
}

var errMainThread = errors.New("on the main thread")

// TestHelperParent is the process TestChildDiesWithParent kills: it starts
// a sleep through Start, prints its PID and waits to be killed.
func TestHelperParent(t *testing.T) {
	if os.Getenv("REAP_TEST_HELPER") != "1" {
		t.Skip("helper process for TestChildDiesWithParent")
	}
	cmd := exec.Command("sleep", "60")
	if err := Start(cmd); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("CHILD " + strconv.Itoa(cmd.Process.Pid) + "\n")
	time.Sleep(60 * time.Second)
}

// A process killed with SIGKILL (no deferred cleanup runs) takes the
// children it started through Start with it.
func TestChildDiesWithParent(t *testing.T) {
	h := exec.Command(os.Args[0], "-test.run=^TestHelperParent$", "-test.v")
	h.Env = append(os.Environ(), "REAP_TEST_HELPER=1")
	out, err := h.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	child := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CHILD "); ok {
			child, _ = strconv.Atoi(v)
			break
		}
	}
	if child == 0 {
		_ = h.Process.Kill()
		_ = h.Wait()
		t.Fatal("the helper never reported its child")
	}
	if !Alive(child) {
		t.Fatal("the child is not running while its parent is")
	}
	_ = h.Process.Kill()
	_ = h.Wait()
	if !gone(child, 5*time.Second) {
		_ = syscall.Kill(child, syscall.SIGKILL)
		t.Fatalf("child %d still runs after its parent was killed", child)
	}
}

func TestTaggedPID(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{"hlp123x0a1b-lan", 123, true},
		{"hlp123x0a1b", 123, true},
		{"hlp4194304-lan", 4194304, true},
		{"hla1b2c3-lan", 0, false}, // the untagged format: never ours to judge
		{"hl123456-lan", 0, false},
		{"hlp-lan", 0, false},
		{"hfp123-x", 0, false}, // another kind
		{"hlp1234567890-x", 0, false},
	} {
		pid, ok := taggedPID(tc.name, "hl")
		if pid != tc.pid || ok != tc.ok {
			t.Errorf("taggedPID(%q) = %d %v, want %d %v", tc.name, pid, ok, tc.pid, tc.ok)
		}
	}
}

func TestAlive(t *testing.T) {
	if !Alive(os.Getpid()) {
		t.Fatal("this process is not alive")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if Alive(cmd.Process.Pid) {
		t.Fatal("an ended process is alive")
	}
}

func TestDirs(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead, err := os.MkdirTemp("", "rtkp"+strconv.Itoa(cmd.Process.Pid)+"-")
	if err != nil {
		t.Fatal(err)
	}
	live, err := os.MkdirTemp("", Tag("rtk")+"-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(live)
	defer os.RemoveAll(dead)
	got := Dirs("rtk")
	if len(got) != 1 || got[0] != dead {
		t.Fatalf("Dirs removed %v, want only %s", got, dead)
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("our own directory: %v", err)
	}
}

// TestHelperChain is a process of TestOrphanExits: "outer" starts "inner"
// (plain exec, as the go command starts a test binary) and waits; inner
// calls ExitWithParent, starts a sleep through Start, reports, and waits.
func TestHelperChain(t *testing.T) {
	switch os.Getenv("REAP_TEST_CHAIN") {
	case "outer":
		c := exec.Command(os.Args[0], "-test.run=^TestHelperChain$", "-test.v")
		c.Env = append(os.Environ(), "REAP_TEST_CHAIN=inner")
		c.Stdout = os.Stdout
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(60 * time.Second)
	case "inner":
		ExitWithParent()
		s := exec.Command("sleep", "60")
		if err := Start(s); err != nil {
			t.Fatal(err)
		}
		os.Stdout.WriteString("CHAIN " + strconv.Itoa(os.Getpid()) + " " + strconv.Itoa(s.Process.Pid) + "\n")
		time.Sleep(60 * time.Second)
	default:
		t.Skip("helper process for TestOrphanExits")
	}
}

// A test binary whose `go test` is killed exits, and takes its children.
func TestOrphanExits(t *testing.T) {
	h := exec.Command(os.Args[0], "-test.run=^TestHelperChain$", "-test.v")
	h.Env = append(os.Environ(), "REAP_TEST_CHAIN=outer")
	out, err := h.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := Start(h); err != nil {
		t.Fatal(err)
	}
	var pids []int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CHAIN "); ok {
			for _, f := range strings.Fields(v) {
				p, _ := strconv.Atoi(f)
				pids = append(pids, p)
			}
			break
		}
	}
	_ = h.Process.Kill()
	_ = h.Wait()
	if len(pids) != 2 {
		t.Fatalf("the helper chain reported %v", pids)
	}
	for _, p := range pids {
		if !gone(p, 5*time.Second) {
			_ = syscall.Kill(p, syscall.SIGKILL)
			t.Errorf("process %d still runs after the chain's head was killed", p)
		}
	}
}
