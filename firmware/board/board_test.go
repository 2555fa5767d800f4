package board

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	b, err := Parse("x", []byte(`# comment
NAME="qemu-x"
GOARCH=arm
GOARM="7"
DEB_ARCH=armhf
KERNEL_PKG=linux-image-armmp
MODULES="a b  c"
CONSOLE=ttyAMA0
QEMU=qemu-system-arm
QEMU_MACHINE="-M virt -cpu cortex-a15"
NIC_MODEL=virtio-net-device
`))
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != "qemu-x" || b.GOARM != "7" || !slices.Equal(b.Modules, []string{"a", "b", "c"}) ||
		!slices.Equal(b.Machine, []string{"-M", "virt", "-cpu", "cortex-a15"}) || b.MemMiB != 256 ||
		!slices.Equal(b.NICIfaces, []string{"eth0"}) {
		t.Fatalf("got %+v", b)
	}
	if got := strings.Join(b.GoEnv(), " "); got != "GOOS=linux GOARCH=arm CGO_ENABLED=0 GOARM=7" {
		t.Fatalf("GoEnv = %s", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"NAME=a b",
		`NAME="a`,
		`NAME="$(reboot)"`,
		"lower=x",
		"NOEQUALS",
		"NAME=x", // missing required keys
	} {
		if _, err := Parse("bad", []byte(in)); err == nil {
			t.Errorf("Parse(%q): no error", in)
		}
	}
}

// TestShippedBoards parses every board/ folder with this parser and with the
// shell, and checks both read the same values.
func TestShippedBoards(t *testing.T) {
	dirs, err := filepath.Glob("../../board/*/board.conf")
	if err != nil || len(dirs) < 4 {
		t.Fatalf("want >= 4 boards, got %v (%v)", dirs, err)
	}
	sh, shErr := exec.LookPath("sh")
	for _, p := range dirs {
		b, err := Load(filepath.Dir(p))
		if err != nil {
			t.Fatal(err)
		}
		if b.Name != filepath.Base(filepath.Dir(p)) {
			t.Errorf("%s: NAME %q differs from the folder name", p, b.Name)
		}
		if shErr != nil {
			continue
		}
		for k, v := range b.Raw {
			out, err := exec.Command(sh, "-c", `. "$1" && eval "printf %s \"\$$2\""`, "sh", p, k).Output()
			if err != nil {
				t.Fatalf("%s: sh: %v", p, err)
			}
			if string(out) != v {
				t.Errorf("%s: %s: sh reads %q, Go reads %q", p, k, out, v)
			}
		}
	}
	if _, err := os.Stat("../../board/qemu-arm64/board.conf"); err != nil {
		t.Fatal("the default board qemu-arm64 is missing")
	}
}
