package initd

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A log line written while a command runs on the console waits until the
// command is done: the command's output stays in one piece, the log line
// follows it. The file gets every line at once.
func TestConsoleLogHoldsLinesDuringCommands(t *testing.T) {
	var console bytes.Buffer
	busy := false
	file := filepath.Join(t.TempDir(), "hagent.log")
	c := &ConsoleLog{Console: &console, File: file, MaxBytes: 1 << 20, Busy: func() bool { return busy }, Hold: 2}
	c.Write([]byte("boot line\n"))
	busy = true
	console.WriteString("HOME        CARE-OF\n") // the command prints
	c.Write([]byte("level=INFO msg=\"role change\"\nlevel=INFO msg=one\nlevel=INFO msg=two"))
	console.WriteString("192.0.2.10  198.51.100.7\n")
	c.Flush() // still busy: nothing
	c.Write([]byte(" more\n"))
	busy = false
	c.Flush()
	want := "boot line\nHOME        CARE-OF\n192.0.2.10  198.51.100.7\n" +
		"(1 log lines held during a command were dropped from the console; all are in " + file + ")\n" +
		"level=INFO msg=one\nlevel=INFO msg=two more\n"
	if console.String() != want {
		t.Fatalf("console:\n%s\nwant:\n%s", console.String(), want)
	}
	b, _ := os.ReadFile(file)
	if got := string(b); got != "boot line\nlevel=INFO msg=\"role change\"\nlevel=INFO msg=one\nlevel=INFO msg=two more\n" {
		t.Fatalf("file: %q", got)
	}
}

func TestConsoleLogRotates(t *testing.T) {
	file := filepath.Join(t.TempDir(), "hagent.log")
	c := &ConsoleLog{Console: &bytes.Buffer{}, File: file, MaxBytes: 100}
	for i := 0; i < 30; i++ {
		c.Write([]byte(strings.Repeat("x", 9) + "\n"))
	}
	cur, _ := os.ReadFile(file)
	old, _ := os.ReadFile(file + ".1")
	if len(cur) > 100 || len(old) == 0 || len(old) > 100 {
		t.Fatalf("rotation: current %d bytes, previous %d", len(cur), len(old))
	}
}

// ShellBusy finds a child of the shell in a /proc-like tree.
func TestShellBusy(t *testing.T) {
	proc := t.TempDir()
	pidFile := filepath.Join(t.TempDir(), "shell.pid")
	os.WriteFile(pidFile, []byte("42\n"), 0o644)
	stat := func(pid, ppid int, comm string) {
		d := filepath.Join(proc, strconv.Itoa(pid))
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "stat"), []byte(strconv.Itoa(pid)+" ("+comm+") S "+strconv.Itoa(ppid)+" 1 1 0"), 0o644)
	}
	stat(1, 0, "init")
	stat(42, 1, "gosh")
	busy := ShellBusy(proc, pidFile)
	if busy() {
		t.Fatal("an idle shell counted busy")
	}
	stat(77, 42, "hactl (x) y")
	if !busy() {
		t.Fatal("a command under the shell not seen")
	}
}

// A command that runs for long (ping, a script) does not hold the log for
// ever: after HoldMax the held lines print anyway.
func TestConsoleLogHoldIsBounded(t *testing.T) {
	var console bytes.Buffer
	c := &ConsoleLog{Console: &console, Busy: func() bool { return true }, HoldMax: time.Millisecond}
	c.Write([]byte("held\n"))
	if console.Len() != 0 {
		t.Fatal("printed while busy")
	}
	time.Sleep(5 * time.Millisecond)
	c.Flush()
	if console.String() != "held\n" {
		t.Fatalf("after HoldMax: %q", console.String())
	}
}
