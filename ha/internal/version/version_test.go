package version

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	set := func(kv ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{}
		for i := 0; i < len(kv); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return bi
	}
	for _, c := range []struct {
		bi   *debug.BuildInfo
		want string
	}{
		{set(), "dev"},
		{set("vcs.revision", "b4b39aa0123456789abcdef0123456789abcdef0", "vcs.modified", "false"), "b4b39aa01234"},
		{set("vcs.revision", "b4b39aa0123456789abcdef0123456789abcdef0", "vcs.modified", "true"), "b4b39aa01234-dirty"},
		{set("vcs.revision", "abc"), "abc"},
	} {
		if got := fromBuildInfo(c.bi); got != c.want {
			t.Errorf("fromBuildInfo(%v) = %q, want %q", c.bi.Settings, got, c.want)
		}
	}
}

// A stamped version wins over the embedded VCS information.
func TestStampWins(t *testing.T) {
	defer func(v string) { Version = v }(Version)
	Version = "v1.2.3"
	if got := String(); got != "v1.2.3" {
		t.Errorf("String() = %q with Version stamped, want v1.2.3", got)
	}
}

// A plain `go build` in a git checkout (no -ldflags) reports the commit, not
// "dev": the binary's embedded vcs.revision is read back. The module's
// sources are committed to a scratch repository first: Go records no VCS
// information in a git worktree (its .git is a file), and this checkout may
// be one.
func TestPlainBuildReportsCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=", "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("cp", "-R", filepath.Join(root, "go.mod"), filepath.Join(root, "go.sum"), filepath.Join(root, "ha"), dir)
	run("git", "init", "-q")
	run("git", "add", "-A")
	run("git", "commit", "-q", "-m", "scratch")
	head := run("git", "rev-parse", "HEAD")
	run("go", "build", "-buildvcs=true", "-o", "hagent.bin", "./ha/cmd/hagent")
	out := run(filepath.Join(dir, "hagent.bin"), "-version")
	// The built binary is untracked: the tree counts as modified.
	if want := head[:12]; !strings.Contains(out, want) {
		t.Errorf("hagent -version = %q, want the commit %s", out, want)
	}
}
