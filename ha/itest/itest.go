// Package itest holds hagent's integration tests: real binaries in network
// namespaces that the tests create (tier 2 of DESIGN.md). The helpers here
// build the binaries once per test run and start agents in lab hosts.
package itest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hagent/hagent/tools/lab"
	"github.com/hagent/hagent/tools/lab/reap"
)

var (
	buildOnce sync.Once
	binDir    string
	ownBins   bool // binDir was made here (RemoveBins removes it)
	buildErr  error
)

// binKind tags the binaries' temporary directory with this process's ID
// (reap.Tag), so that a later run removes what a killed one left.
const binKind = "hagent-itest-bin"

// BinsEnv names a directory of already built binaries that Bins uses
// instead of building: a helper process started by a test gets its
// parent's.
const BinsEnv = "HAGENT_ITEST_BINS"

// Bins builds hagent, hactl and mnsim (once per test binary) and returns
// the directory holding them; TestMain removes it with RemoveBins.
func Bins(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if d := os.Getenv(BinsEnv); d != "" {
			binDir = d
			return
		}
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		binDir, buildErr = reap.TempDir(binKind) // and removes those of killed runs
		if buildErr != nil {
			return
		}
		ownBins = true
		// hagent_testhooks: the agent honours datapath.AdoptTunnelEnv
		// (the host has no ipip); the shipped binary is built without it.
		cmd := exec.Command("go", "build", "-tags", "hagent_testhooks", "-o", binDir+"/", "./ha/cmd/hagent", "./ha/cmd/hactl", "./tools/mnsim")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building binaries: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// RemoveBins removes the directory Bins built into (about 15 MB); TestMain
// calls it after the tests, passed or failed. A run killed before that
// leaves it to the next run's Bins.
func RemoveBins() {
	if ownBins {
		_ = os.RemoveAll(binDir)
	}
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the hagent module")
	}
	return filepath.Dir(mod), nil
}

// Agent is a hagent process in a lab host.
type Agent struct {
	Host   *lab.Host
	Proc   *lab.Proc
	Config string
	Socket string
	bins   string
}

// StartAgent writes config (with the placeholder @SOCKET@ replaced by a
// fresh console socket path) and starts hagent in h, waiting for ready.
func StartAgent(t testing.TB, h *lab.Host, config string) *Agent {
	t.Helper()
	bins := Bins(t)
	dir := t.TempDir()
	a := &Agent{Host: h, Config: filepath.Join(dir, "hagent.toml"), Socket: filepath.Join(dir, "hagent.sock"), bins: bins}
	config = strings.ReplaceAll(config, "@SOCKET@", a.Socket)
	if err := os.WriteFile(a.Config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := h.Start(filepath.Join(bins, "hagent"), "-config", a.Config)
	if err != nil {
		t.Fatal(err)
	}
	a.Proc = p
	if err := p.WaitFor(`msg="hagent ready"`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	return a
}

// Hactl runs hactl against the agent's console.
func (a *Agent) Hactl(args ...string) (string, error) {
	out, err := exec.Command(filepath.Join(a.bins, "hactl"), append([]string{"-socket", a.Socket}, args...)...).CombinedOutput()
	return string(out), err
}

// Mnsim runs mnsim in host h and returns its output and exit code.
func Mnsim(t testing.TB, h *lab.Host, args ...string) (string, int) {
	t.Helper()
	cmd := h.Command(filepath.Join(Bins(t), "mnsim"), args...)
	out, err := reap.CombinedOutput(cmd) // a load run dies with the test
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		t.Fatalf("mnsim %v: %v", args, err)
	}
	return string(out), 0
}
