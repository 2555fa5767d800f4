// Command hainit is the image's uinit: u-root's init runs it once after
// loading the kernel modules. It brings up the network (kernel command line
// hagent.* parameters and /etc/board.conf), starts a detached supervisor that
// keeps hagent running, and returns so that init can start the console shell.
//
//	hainit             boot: network, then `hainit -supervise` in the background
//	hainit -supervise  run hagent in the foreground, restart it with backoff
//	hainit -poweroff   stop the agent cleanly (SIGTERM), then power off
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hagent/hagent/firmware/board"
	"github.com/hagent/hagent/firmware/initd"
)

const pidFile = "/run/hainit.pid"

// shellPidFile names the console shell, so that the supervisor can tell
// when a command runs on the console and hold the agent's log lines until
// it is done (initd.ConsoleLog).
const shellPidFile = "/run/console-shell.pid"

func main() {
	fs := flag.NewFlagSet("hainit", flag.ExitOnError)
	supervise := fs.Bool("supervise", false, "run the agent under supervision in the foreground")
	poweroff := fs.Bool("poweroff", false, "stop the agent cleanly, then power the machine off")
	agent := fs.String("agent", "/bbin/hagent", "the agent binary")
	self := fs.String("self", "/bbin/hainit", "this binary, for starting the supervisor")
	ip := fs.String("ip", "/bbin/ip", "the ip command")
	shell := fs.String("shell", "/bin/sh", "the console shell (boot mode runs it, again when it exits)")
	_ = fs.Parse(os.Args[1:])

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var err error
	switch {
	case *poweroff:
		err = powerOff(log)
	case *supervise:
		err = runSupervisor(log, *agent)
	default:
		err = boot(log, *self, *ip)
		if err == nil {
			consoleShell(log, *shell)
		}
	}
	if err != nil {
		log.Error("hainit: " + err.Error())
		os.Exit(1)
	}
}

func boot(log *slog.Logger, self, ip string) error {
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("reading the kernel command line: %w", err)
	}
	b, err := initd.ParseCmdline(string(raw))
	if err != nil {
		// Keep booting: the console must stay usable to fix the command line.
		log.Error("hainit: "+err.Error(), "cmdline", strings.TrimSpace(string(raw)))
	}
	ifaces := []string{"eth0"}
	if bd, err := board.Load("/etc"); err == nil {
		ifaces = bd.NICIfaces
		log.Info("hainit: board", "name", bd.Name, "ifaces", strings.Join(ifaces, ","))
	} else {
		log.Warn("hainit: no board file; assuming eth0", "err", err)
	}
	if b.Hostname != "" {
		if err := syscall.Sethostname([]byte(b.Hostname)); err != nil {
			log.Error("hainit: sethostname", "err", err)
		}
	}
	// /run holds the supervisor's pid file and the agent's console socket.
	if err := os.MkdirAll("/run", 0o755); err != nil {
		log.Error("hainit: mkdir /run", "err", err)
	}
	ctx := context.Background()
	// Only the board's NICs are waited for; QEMU or the board may have fewer.
	if missing := initd.WaitIfaces(ctx, "/sys/class/net", ifaces[:1], 10*time.Second); len(missing) > 0 {
		log.Error("hainit: network interface missing after 10s (NIC driver in MODULES?)", "iface", missing[0])
	}
	plan := initd.PlanNet(present(ifaces), b)
	if err := initd.RunNet(ctx, log, ip, plan); err != nil {
		log.Error("hainit: " + err.Error())
	}
	if b.NoAgent {
		log.Warn("hainit: hagent.run=0 on the kernel command line: not starting the agent")
		return nil
	}
	cmd := exec.Command(self, "-supervise")
	cmd.Env = append(os.Environ(), "HAGENT_CONFIG="+b.Config)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	// A session of its own: when this uinit (a session leader owning the
	// console) exits, the kernel hangs up its session; the supervisor must
	// not be part of it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the supervisor %s: %w", self, err)
	}
	log.Info("hainit: supervisor started", "pid", cmd.Process.Pid, "config", b.Config)
	return cmd.Process.Release()
}

// consoleShell runs the operator's shell on the console and runs it again
// when it exits; it never returns. Why not exit and let u-root's init start
// the shell: init makes this process the session leader owning the serial
// console (console= on the kernel command line), and when a session leader
// exits the kernel hangs up its terminal, which kills every descriptor init
// opened on it for the shell's and the supervisor's output.
func consoleShell(log *slog.Logger, shell string) {
	// Catch, not ignore: an ignored SIGINT would be inherited by the shell
	// and every command it runs, and Ctrl-C would stop nothing.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTSTP)
	for {
		cmd := exec.Command(shell)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		err := cmd.Start()
		if err == nil {
			_ = os.WriteFile(shellPidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
			err = cmd.Wait()
		}
		log.Info("hainit: console shell exited; starting a new one", "status", exitStatus(err))
		time.Sleep(200 * time.Millisecond)
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

// present keeps the interfaces that exist, so that a board with one NIC
// does not log errors for eth1.
func present(ifaces []string) []string {
	var out []string
	for _, ifc := range ifaces {
		if _, err := os.Stat("/sys/class/net/" + ifc); err == nil {
			out = append(out, ifc)
		}
	}
	return out
}

func runSupervisor(log *slog.Logger, agent string) error {
	signal.Ignore(syscall.SIGHUP)
	config := os.Getenv("HAGENT_CONFIG")
	if config == "" {
		config = initd.DefaultConfig
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		log.Warn("hainit: cannot write the pid file; hainit -poweroff will not stop the agent first", "err", err)
	}
	// Say early and plainly when the configuration is wrong.
	if out, err := exec.Command(agent, "-check", "-config", config).CombinedOutput(); err != nil {
		log.Error("hainit: configuration check failed; starting the agent anyway so its own log explains",
			"config", config, "err", err, "out", strings.TrimSpace(string(out)))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The agent's and the supervisor's log go to the console between
	// commands, never into a command's output, and all of it to
	// /run/hagent.log (docs/firmware.md "The serial console").
	cl := &initd.ConsoleLog{Console: os.Stdout, File: initd.DefaultLogFile, MaxBytes: 256 << 10,
		Busy: initd.ShellBusy("/proc", shellPidFile), Hold: 512, HoldMax: 30 * time.Second}
	go cl.Run(ctx, 100*time.Millisecond)
	log = slog.New(slog.NewTextHandler(cl, nil))
	s := &initd.Supervisor{
		Path: agent, Args: []string{"-config", config},
		Stdout: cl, Stderr: cl, Log: log,
		Policy: initd.DefaultBackoff(), StopTimeout: 5 * time.Second,
	}
	err := s.Run(ctx)
	_ = os.Remove(pidFile)
	return err
}

func powerOff(log *slog.Logger) error {
	if b, err := os.ReadFile(pidFile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			log.Info("hainit: stopping the supervisor", "pid", pid)
			if err := syscall.Kill(pid, syscall.SIGTERM); err == nil {
				deadline := time.Now().Add(10 * time.Second)
				for alive(pid) && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}
	}
	syscall.Sync()
	log.Info("hainit: power off")
	err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	return errors.Join(errors.New("power off failed"), err)
}

// alive reports whether pid runs and is not a zombie waiting for init.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}
