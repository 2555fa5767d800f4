package initd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os/exec"
	"syscall"
	"time"
)

// Backoff is the restart policy: the first restart waits Min, each quick
// death doubles the wait up to Max, and a run of at least Stable resets it.
// A crash loop therefore costs the router little CPU while a rare crash is
// repaired within Min.
type Backoff struct {
	Min, Max, Stable time.Duration
}

// DefaultBackoff is the policy the image uses.
func DefaultBackoff() Backoff {
	return Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second, Stable: time.Minute}
}

// Next returns the wait before the next start, given the previous wait and
// how long the process just ran. Pure, so the policy is tested without time.
func (b Backoff) Next(prev, ranFor time.Duration) time.Duration {
	if prev <= 0 || ranFor >= b.Stable {
		return b.Min
	}
	n := prev * 2
	if n > b.Max {
		n = b.Max
	}
	return n
}

// Supervisor runs one command in the foreground and restarts it when it dies.
type Supervisor struct {
	Path        string
	Args        []string
	Env         []string  // nil: inherit
	Stdout      io.Writer // the console
	Stderr      io.Writer
	Log         *slog.Logger
	Policy      Backoff
	StopTimeout time.Duration // after SIGTERM, before SIGKILL
	// Started, when set, is told each new PID (the tests use it).
	Started func(pid int)
}

// Run starts the command and restarts it until ctx is done; then it sends
// SIGTERM, waits StopTimeout, sends SIGKILL if needed, and returns nil.
func (s *Supervisor) Run(ctx context.Context) error {
	var delay time.Duration
	for restarts := 0; ; restarts++ {
		start := time.Now()
		cmd := exec.Command(s.Path, s.Args...)
		cmd.Env = s.Env
		cmd.Stdout, cmd.Stderr = s.Stdout, s.Stderr
		var ranFor time.Duration
		if err := cmd.Start(); err != nil {
			s.Log.Error("hainit: cannot start the agent; will retry", "path", s.Path, "err", err)
		} else {
			if s.Started != nil {
				s.Started(cmd.Process.Pid)
			}
			s.Log.Info("hainit: agent started", "pid", cmd.Process.Pid, "restarts", restarts)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				ranFor = time.Since(start)
				s.Log.Warn("hainit: agent exited", "pid", cmd.Process.Pid, "status", exitStatus(err), "ran", ranFor.Round(time.Millisecond))
			case <-ctx.Done():
				s.stop(cmd, done)
				return nil
			}
		}
		delay = s.Policy.Next(delay, ranFor)
		s.Log.Info("hainit: restarting the agent", "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
	}
}

func (s *Supervisor) stop(cmd *exec.Cmd, done <-chan error) {
	pid := cmd.Process.Pid
	s.Log.Info("hainit: stopping the agent", "pid", pid)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(s.StopTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		s.Log.Info("hainit: agent stopped", "pid", pid, "status", exitStatus(err))
	case <-t.C:
		s.Log.Error("hainit: agent ignored SIGTERM; killing it", "pid", pid, "after", s.StopTimeout)
		_ = cmd.Process.Kill()
		<-done
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exit 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ProcessState.String()
	}
	return err.Error()
}
