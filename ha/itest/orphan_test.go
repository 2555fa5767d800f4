package itest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/tools/lab"
	"github.com/hagent/hagent/tools/lab/reap"
)

// TestHelperOrphanRun is the `go test` process TestKilledRunLeavesNothing
// kills: it builds a lab, starts an agent in it, reports both and waits.
func TestHelperOrphanRun(t *testing.T) {
	if os.Getenv("HAGENT_ITEST_ORPHAN") != "1" {
		t.Skip("helper process for TestKilledRunLeavesNothing")
	}
	l := lab.NewT(t)
	h := l.HostT(t, "ha", "192.0.2.1/24")
	a := StartAgent(t, h, regConfig)
	fmt.Printf("ORPHAN %d %s %s\n", a.Proc.Cmd.Process.Pid, l.Prefix+"-lan", h.NS)
	time.Sleep(5 * time.Minute)
}

// A `go test` killed with SIGKILL (a timeout's kill, a second ^C, the OOM
// killer: no cleanup runs) leaves no agent running, and the next lab
// removes its namespaces. Before, the agent ran on and the namespaces
// stayed until someone deleted them by hand.
func TestKilledRunLeavesNothing(t *testing.T) {
	lab.Require(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperOrphanRun$", "-test.v")
	// Its temporary files (no cleanup runs in a killed process) go into
	// ours, which the test removes.
	cmd.Env = append(os.Environ(), "HAGENT_ITEST_ORPHAN=1", BinsEnv+"="+Bins(t), "TMPDIR="+t.TempDir())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := reap.Start(cmd); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	report := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "ORPHAN" {
				report <- f[1:]
				break
			}
		}
		close(report)
	}()
	var f []string
	select {
	case f = <-report:
	case <-time.After(60 * time.Second):
	}
	if f == nil {
		t.Fatal("the helper run never reported its agent")
	}
	agent, _ := strconv.Atoi(f[0])
	spaces := f[1:]
	if !reap.Alive(agent) {
		t.Fatalf("agent %d not running while its test runs", agent)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for end := time.Now().Add(10 * time.Second); reap.Alive(agent); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			_ = syscall.Kill(agent, syscall.SIGKILL) // by PID: ours
			t.Fatalf("agent %d still runs after its test process was killed", agent)
		}
	}
	for _, ns := range spaces {
		if _, err := os.Stat("/var/run/netns/" + ns); err != nil {
			t.Fatalf("namespace %s gone before any reaping (%v): the test proves nothing", ns, err)
		}
	}
	lab.NewT(t) // the next lab
	for _, ns := range spaces {
		if _, err := os.Stat("/var/run/netns/" + ns); err == nil {
			_ = exec.Command("ip", "netns", "del", ns).Run()
			t.Errorf("namespace %s of the killed run survived the next lab.New", ns)
		}
	}
}
