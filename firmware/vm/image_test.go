package vm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// `make image` runs firmware/mkimage.sh by a relative path; Build runs it by
// an absolute one (boot, demo, vmtest). Both must compute the same
// fingerprint, or each rebuilds the image the other built. The same for a
// config named relatively or absolutely.
func TestFingerprintIgnoresInvocationPath(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	abs, err := Fingerprint(ctx, root, "qemu-arm64", BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	run := func(dir string, env []string, args ...string) string {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		cmd.Env = append(append(os.Environ(), "HAGENT_FINGERPRINT=1"), env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v in %s: %v", args, dir, err)
		}
		return strings.TrimSpace(string(out))
	}
	for _, c := range []struct {
		name string
		dir  string
		env  []string
		args []string
	}{
		{"make image (relative path)", root, nil, []string{"firmware/mkimage.sh", "qemu-arm64"}},
		{"./ prefix", root, nil, []string{"./firmware/mkimage.sh", "qemu-arm64"}},
		{"from firmware/", filepath.Join(root, "firmware"), nil, []string{"bash", "./mkimage.sh", "qemu-arm64"}},
		{"config relative", root, []string{"HAGENT_CONFIG=rootfs/etc/hagent.toml"}, []string{"firmware/mkimage.sh", "qemu-arm64"}},
		{"config absolute", root, []string{"HAGENT_CONFIG=" + filepath.Join(root, "rootfs/etc/hagent.toml")}, []string{"firmware/mkimage.sh", "qemu-arm64"}},
	} {
		if got := run(c.dir, c.env, c.args...); got != abs {
			t.Errorf("%s: fingerprint %.16s, Build's (absolute path) %.16s: one would rebuild the other's image", c.name, got, abs)
		}
	}
}
