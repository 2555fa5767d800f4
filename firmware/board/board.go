// Package board reads board/<name>/board.conf, the declarative description of
// one firmware target. The same file is sourced by firmware/mkimage.sh, so the
// format is the intersection of shell and a simple KEY=VALUE grammar: one
// assignment per line, the value bare or in double quotes, '#' comments, no
// expansions. Keeping one source of truth for the build script, the boot tests
// and the guest's init (which reads /etc/board.conf) is the point.
package board

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Board is one target. Field comments name the board.conf key.
type Board struct {
	Name       string   // NAME
	GOARCH     string   // GOARCH
	GOARM      string   // GOARM (arm only)
	GOMIPS     string   // GOMIPS (mips, mipsle only)
	GOAMD64    string   // GOAMD64 (amd64 only)
	DebArch    string   // DEB_ARCH: Debian architecture of the kernel package
	KernelPkg  string   // KERNEL_PKG: Debian metapackage, resolved at build time
	Modules    []string // MODULES: loaded at boot in this order
	Console    string   // CONSOLE: serial console device (console= on the command line)
	QEMU       string   // QEMU: emulator binary
	Machine    []string // QEMU_MACHINE: machine and CPU arguments
	MemMiB     int      // QEMU_MEM
	NICModel   string   // NIC_MODEL: QEMU -device model for each NIC
	NICIfaces  []string // NIC_IFACES: guest interface names in NIC order
	Flash      string   // FLASH: how a real board takes the image (documentation)
	Raw        map[string]string
	ConfigPath string // the file it was read from
}

// Load reads dir/board.conf.
func Load(dir string) (Board, error) {
	p := filepath.Join(dir, "board.conf")
	b, err := os.ReadFile(p)
	if err != nil {
		return Board{}, fmt.Errorf("board: %w (each board is a folder under board/ with a board.conf)", err)
	}
	bd, err := Parse(p, b)
	if err != nil {
		return Board{}, err
	}
	return bd, nil
}

// Parse parses the contents of a board.conf; name is used in error messages.
func Parse(name string, b []byte) (Board, error) {
	raw := make(map[string]string)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !validKey(k) {
			return Board{}, fmt.Errorf("board: %s:%d: want KEY=VALUE, got %q", name, ln, line)
		}
		val, err := unquote(v)
		if err != nil {
			return Board{}, fmt.Errorf("board: %s:%d: %s: %v", name, ln, k, err)
		}
		raw[k] = val
	}
	if err := sc.Err(); err != nil {
		return Board{}, fmt.Errorf("board: %s: %w", name, err)
	}
	bd := Board{
		Name:       raw["NAME"],
		GOARCH:     raw["GOARCH"],
		GOARM:      raw["GOARM"],
		GOMIPS:     raw["GOMIPS"],
		GOAMD64:    raw["GOAMD64"],
		DebArch:    raw["DEB_ARCH"],
		KernelPkg:  raw["KERNEL_PKG"],
		Modules:    strings.Fields(raw["MODULES"]),
		Console:    raw["CONSOLE"],
		QEMU:       raw["QEMU"],
		Machine:    strings.Fields(raw["QEMU_MACHINE"]),
		NICModel:   raw["NIC_MODEL"],
		NICIfaces:  strings.Fields(raw["NIC_IFACES"]),
		Flash:      raw["FLASH"],
		Raw:        raw,
		ConfigPath: name,
	}
	for _, k := range []string{"NAME", "GOARCH", "DEB_ARCH", "KERNEL_PKG", "CONSOLE", "QEMU", "QEMU_MACHINE", "NIC_MODEL"} {
		if raw[k] == "" {
			return Board{}, fmt.Errorf("board: %s: %s is missing or empty", name, k)
		}
	}
	bd.MemMiB = 256
	if m := raw["QEMU_MEM"]; m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 64 {
			return Board{}, fmt.Errorf("board: %s: QEMU_MEM %q: want MiB >= 64", name, m)
		}
		bd.MemMiB = n
	}
	if len(bd.NICIfaces) == 0 {
		bd.NICIfaces = []string{"eth0"}
	}
	return bd, nil
}

// GoEnv is the environment for building Go code for the board.
func (b Board) GoEnv() []string {
	env := []string{"GOOS=linux", "GOARCH=" + b.GOARCH, "CGO_ENABLED=0"}
	for _, kv := range [][2]string{{"GOARM", b.GOARM}, {"GOMIPS", b.GOMIPS}, {"GOAMD64", b.GOAMD64}} {
		if kv[1] != "" {
			env = append(env, kv[0]+"="+kv[1])
		}
	}
	return env
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		switch {
		case c >= 'A' && c <= 'Z', c == '_':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// unquote accepts a bare word or a double-quoted string without shell
// specials, so that sh and this parser agree on the value.
func unquote(v string) (string, error) {
	if strings.HasPrefix(v, `"`) {
		if len(v) < 2 || !strings.HasSuffix(v, `"`) {
			return "", fmt.Errorf("unterminated quote in %s", v)
		}
		v = v[1 : len(v)-1]
		if strings.ContainsAny(v, "\"\\$`") {
			return "", fmt.Errorf("value %q holds a shell special (\" \\ $ `): not allowed", v)
		}
		return v, nil
	}
	if strings.ContainsAny(v, " \t\"'\\$`;&|<>()") {
		return "", fmt.Errorf("value %q needs double quotes (or holds a shell special)", v)
	}
	return v, nil
}
