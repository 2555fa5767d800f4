// Package vm builds firmware images and boots them under QEMU for the boot
// tests (firmware/vmtest), `make boot` and the demo: one place that knows the
// QEMU command line, the serial console protocol and the lab network.
package vm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hagent/hagent/firmware/board"
)

// Root returns the module root: the nearest directory above the working
// directory whose go.mod declares our module.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/hagent/hagent\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("vm: no go.mod of github.com/hagent/hagent above the working directory")
		}
		dir = parent
	}
}

// Image is a built firmware image.
type Image struct {
	Board     board.Board
	Dir       string
	Kernel    string // vmlinuz
	Initrd    string // initramfs.cpio.xz
	CPIOBytes int64
	XZBytes   int64
}

// BuildOptions tune Build; the zero value builds the shipped image.
type BuildOptions struct {
	Config     string    // HAGENT_CONFIG: another /etc/hagent.toml
	ExtraFiles string    // HAGENT_EXTRA_FILES: a tree overlaid last
	OutDir     string    // HAGENT_FW_OUT: default build/firmware/<board>
	Log        io.Writer // the script's progress lines; nil discards
}

// mkimage is the script's command line as Build runs it: by an absolute
// path, from the module root.
func mkimage(ctx context.Context, root, boardName string, o BuildOptions) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "firmware", "mkimage.sh"), boardName)
	cmd.Dir = root
	cmd.Env = os.Environ()
	if o.OutDir != "" {
		cmd.Env = append(cmd.Env, "HAGENT_FW_OUT="+o.OutDir)
	}
	if o.Config != "" {
		cmd.Env = append(cmd.Env, "HAGENT_CONFIG="+o.Config)
	}
	if o.ExtraFiles != "" {
		cmd.Env = append(cmd.Env, "HAGENT_EXTRA_FILES="+o.ExtraFiles)
	}
	return cmd
}

// Fingerprint is the hash of the image's inputs that Build compares with
// the one stored beside an image to decide whether to rebuild; it builds
// nothing.
func Fingerprint(ctx context.Context, root, boardName string, o BuildOptions) (string, error) {
	cmd := mkimage(ctx, root, boardName, o)
	cmd.Env = append(cmd.Env, "HAGENT_FINGERPRINT=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("vm: firmware/mkimage.sh %s (fingerprint): %v\n%s", boardName, err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// Build runs firmware/mkimage.sh, the same script `make image` runs; it is
// a no-op when the image's inputs have not changed.
func Build(ctx context.Context, root, boardName string, o BuildOptions) (Image, error) {
	bd, err := board.Load(filepath.Join(root, "board", boardName))
	if err != nil {
		return Image{}, err
	}
	cmd := mkimage(ctx, root, boardName, o)
	out := filepath.Join(root, "build", "firmware", boardName)
	if o.OutDir != "" {
		out = o.OutDir
	}
	var tail tailBuf
	w := io.Writer(&tail)
	if o.Log != nil {
		w = io.MultiWriter(&tail, o.Log)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return Image{}, fmt.Errorf("vm: firmware/mkimage.sh %s: %v\n%s", boardName, err, tail.String())
	}
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	img := Image{Board: bd, Dir: out, Kernel: filepath.Join(out, "vmlinuz"), Initrd: filepath.Join(out, "initramfs.cpio.xz")}
	sizes, err := readKV(filepath.Join(out, "sizes"))
	if err != nil {
		return Image{}, fmt.Errorf("vm: image built but %v", err)
	}
	img.CPIOBytes, _ = strconv.ParseInt(sizes["CPIO_BYTES"], 10, 64)
	img.XZBytes, _ = strconv.ParseInt(sizes["XZ_BYTES"], 10, 64)
	return img, nil
}

func readKV(p string) (map[string]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = v
		}
	}
	return m, sc.Err()
}

// tailBuf keeps the last 8 KiB written, for error messages.
type tailBuf struct{ b []byte }

func (t *tailBuf) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 8192 {
		t.b = append(t.b[:0], t.b[len(t.b)-8192:]...)
	}
	return len(p), nil
}
func (t *tailBuf) String() string { return string(t.b) }
