package initd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultLogFile is where the agent's and the supervisor's log lines are
// kept on the router (`cat /run/hagent.log`; the previous part in .1).
const DefaultLogFile = "/run/hagent.log"

// ConsoleLog carries the agent's log to the serial console the way a
// router's operator expects (IOS `logging synchronous`): a log line never
// lands in the middle of a command's output. While a command the operator
// typed runs on the console, lines are held and printed after its output;
// at the prompt they print at once. Every line also goes to a file, bounded
// (MaxBytes, then rotated once to File+".1"), so nothing held back or
// dropped is lost to `cat`.
type ConsoleLog struct {
	Console  io.Writer
	File     string      // "" keeps no file
	MaxBytes int64       // rotate the file beyond this size
	Busy     func() bool // a command runs on the console now
	Hold     int         // lines held at most while busy; the oldest go first, counted
	// HoldMax bounds how long a line waits for a long-running command
	// (ping, a shell script): then it prints anyway. 0: no bound.
	HoldMax time.Duration

	mu      sync.Mutex
	partial []byte
	held    [][]byte
	since   time.Time // when the oldest held line arrived
	dropped int
	f       *os.File
	size    int64
}

// Write splits p into lines; a line without its newline waits for the rest.
func (c *ConsoleLog) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partial = append(c.partial, p...)
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		line := append([]byte(nil), c.partial[:i+1]...)
		c.partial = c.partial[i+1:]
		c.line(line)
	}
	if len(c.partial) > 64<<10 {
		// A runaway line without a newline: cut it rather than grow.
		c.line(append(c.partial, '\n'))
		c.partial = nil
	}
	return len(p), nil
}

func (c *ConsoleLog) line(l []byte) {
	c.toFile(l)
	if c.Busy != nil && c.Busy() {
		if c.Hold > 0 && len(c.held) >= c.Hold {
			c.held = c.held[1:]
			c.dropped++
		}
		if len(c.held) == 0 {
			c.since = time.Now()
		}
		c.held = append(c.held, l)
		return
	}
	c.flushLocked()
	_, _ = c.Console.Write(l)
}

// Flush prints the held lines if the console is free; Run calls it.
func (c *ConsoleLog) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.held) == 0 && c.dropped == 0 {
		return
	}
	if c.Busy != nil && c.Busy() && (c.HoldMax == 0 || time.Since(c.since) < c.HoldMax) {
		return
	}
	c.flushLocked()
}

func (c *ConsoleLog) flushLocked() {
	if c.dropped > 0 {
		fmt.Fprintf(c.Console, "(%d log lines held during a command were dropped from the console; all are in %s)\n", c.dropped, c.File)
		c.dropped = 0
	}
	for _, l := range c.held {
		_, _ = c.Console.Write(l)
	}
	c.held = c.held[:0]
}

// Run flushes held lines within interval of the command's end, until ctx is
// done.
func (c *ConsoleLog) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Flush()
		}
	}
}

func (c *ConsoleLog) toFile(l []byte) {
	if c.File == "" {
		return
	}
	if c.f == nil || (c.MaxBytes > 0 && c.size+int64(len(l)) > c.MaxBytes) {
		if c.f != nil {
			c.f.Close()
			_ = os.Rename(c.File, c.File+".1")
		}
		f, err := os.OpenFile(c.File, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			c.File = "" // no file system to write to: the console alone
			return
		}
		c.f = f
		if fi, err := f.Stat(); err == nil {
			c.size = fi.Size()
		}
	}
	n, _ := c.f.Write(l)
	c.size += int64(n)
}

// ShellBusy reports whether the shell whose PID is in pidFile has a child
// process: a command the operator typed is running on the console. The
// firmware has a few dozen processes; scanning /proc is cheap.
func ShellBusy(proc, pidFile string) func() bool {
	return func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		shell := strings.TrimSpace(string(b))
		ents, err := os.ReadDir(proc)
		if err != nil {
			return false
		}
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err != nil {
				continue
			}
			st, err := os.ReadFile(proc + "/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			// pid (comm) state ppid ...: comm may hold spaces and parens.
			s := string(st)
			i := strings.LastIndexByte(s, ')')
			if i < 0 {
				continue
			}
			f := strings.Fields(s[i+1:])
			if len(f) >= 2 && f[1] == shell {
				return true
			}
		}
		return false
	}
}
