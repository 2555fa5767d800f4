package vm

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// NewLab removes the namespaces a killed run's lab left (its PID has
// ended) and no others.
func TestNewLabReapsDeadRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2")
	}
	ended := exec.Command("true")
	if err := ended.Run(); err != nil {
		t.Fatal(err)
	}
	dead := labKind + "p" + strconv.Itoa(ended.Process.Pid) + "-lan"
	if out, err := exec.Command("ip", "netns", "add", dead).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v %s", dead, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", dead).Run() })
	l, err := NewLab(context.Background(), LabPrefix())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := os.Stat("/var/run/netns/" + dead); err == nil {
		t.Fatalf("%s of an ended run survived NewLab", dead)
	}
	if _, err := os.Stat("/var/run/netns/" + l.Netns); err != nil {
		t.Fatalf("our own lab's namespace: %v", err)
	}
}
