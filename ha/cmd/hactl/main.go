// Command hactl is the operator's console client for a running hagent:
//
//	hactl show bindings [ADDR] | stats | redundancy | version
//	hactl clear binding ADDR
//
// It prints tables for people and, with -json, the agent's raw answer.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hagent/hagent/ha/internal/console"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: hactl [-socket PATH] [-json] [-limit N] COMMAND
commands:
  show bindings [ADDR]   mobility bindings (home, care-of, lifetime, flags, identification)
  show stats             counters per reply code and per drop reason
  show redundancy        role in the group, peers and sync counters
  show version           agent version, addresses, config file
  clear binding ADDR     remove the binding of home address ADDR
`

// commands are the console commands and how many arguments each takes
// (min, max). hactl checks them before dialling, so that a typo is a
// usage error even when no agent runs. "show agent" is the agent's alias
// of "show version".
var commands = []struct {
	name     string
	min, max int
}{
	{"show bindings", 0, 1},
	{"show stats", 0, 0},
	{"show redundancy", 0, 0},
	{"show version", 0, 0},
	{"show agent", 0, 0},
	{"clear binding", 1, 1},
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hactl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	help := func(w io.Writer) { fs.SetOutput(w); fmt.Fprint(w, usage); fs.PrintDefaults() }
	fs.Usage = func() {} // Parse would print it to stderr even for -h; see below
	socket := fs.String("socket", console.DefaultSocket, "the agent's console socket")
	asJSON := fs.Bool("json", false, "print the agent's answer as JSON")
	limit := fs.Int("limit", 0, "rows of show bindings (0 = agent default 10000, -1 = all)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the agent")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			// Help asked for is an answer, not an error: stdout, exit 0.
			help(stdout)
			return 0
		}
		help(stderr) // after Parse's own line naming the bad flag
		return 2
	}
	words := fs.Args()
	if len(words) == 1 && words[0] == "help" {
		help(stdout)
		return 0
	}
	if msg := checkCommand(words); msg != "" {
		fmt.Fprintf(stderr, "hactl: %s (hactl -h lists the commands and flags)\n", msg)
		return 2
	}
	req := console.Request{Cmd: words[0] + " " + words[1], Args: words[2:], Limit: *limit}
	resp, err := console.Call(*socket, req, *timeout)
	if err != nil {
		fmt.Fprintln(stderr, "hactl:", callError(*socket, *timeout, err))
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(resp)
		if resp.Error != "" {
			return 1
		}
		return 0
	}
	if resp.Error != "" {
		fmt.Fprintln(stderr, "hactl:", resp.Error)
		return 1
	}
	print(stdout, resp)
	return 0
}

// checkCommand returns why words is not a console command, or "".
func checkCommand(words []string) string {
	var names []string
	for _, c := range commands {
		if c.name == "show agent" {
			continue // an alias: not advertised
		}
		names = append(names, c.name)
	}
	valid := "valid commands: " + strings.Join(names, ", ")
	if len(words) == 0 {
		return "no command given; " + valid
	}
	if len(words) == 1 {
		return fmt.Sprintf("%q is not a command; %s", words[0], valid)
	}
	name := words[0] + " " + words[1]
	for _, c := range commands {
		if c.name != name {
			continue
		}
		n := len(words) - 2
		switch {
		case c.min == 1 && n != 1:
			return fmt.Sprintf("%s takes one home address (e.g. %s 192.0.2.10)", name, name)
		case n > c.max && c.max == 0:
			return fmt.Sprintf("%s takes no arguments (got %q)", name, strings.Join(words[2:], " "))
		case n > c.max:
			return fmt.Sprintf("%s takes at most one home address (got %q)", name, strings.Join(words[2:], " "))
		}
		return ""
	}
	return fmt.Sprintf("unknown command %q; %s", name, valid)
}

// callError says why the agent could not be reached in operator's terms:
// what the socket's state means and what to do, without Go's dial text.
func callError(socket string, timeout time.Duration, err error) string {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Sprintf("the agent at %s did not answer within %v (busy or hung? -timeout D waits longer)", socket, timeout)
	case errors.Is(err, syscall.ENOENT):
		return fmt.Sprintf("cannot reach the agent at %s: no such file (is hagent running? -socket PATH to use another)", socket)
	case errors.Is(err, syscall.ECONNREFUSED):
		if fi, serr := os.Stat(socket); serr == nil && fi.Mode()&os.ModeSocket == 0 {
			return fmt.Sprintf("cannot reach the agent at %s: not a socket (-socket PATH names the agent's console socket, agent.console_socket in its config)", socket)
		}
		return fmt.Sprintf("cannot reach the agent at %s: connection refused (the socket exists but nobody listens: hagent stopped uncleanly? restart it)", socket)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Sprintf("cannot reach the agent at %s: permission denied (run hactl as root)", socket)
	}
	return strings.TrimPrefix(err.Error(), "console: ")
}

func print(w io.Writer, r *console.Response) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	switch {
	case r.Bindings != nil:
		b := r.Bindings
		fmt.Fprintf(tw, "bindings: %d live of %d, %d tombstones of %d\n", b.Live, b.Capacity, b.Tombs, b.TombCap)
		if len(b.Rows) > 0 {
			fmt.Fprintln(tw, "HOME\tCARE-OF\tHOME-AGENT\tSTATE\tGRANTED\tREMAINING\tFLAGS\tIDENTIFICATION\tNODE")
		}
		for _, x := range b.Rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%ds\t%ds\t%s\t%#016x\t%s\n",
				x.Home, dash(x.CareOf), dash(x.HomeAgent), x.State, x.Granted, x.Remaining, dash(x.Flags), x.ID, dash(x.Node))
		}
		if b.Truncated > 0 {
			fmt.Fprintf(tw, "(%d more not shown; use -limit -1 for all)\n", b.Truncated)
		}
	case r.Stats != nil:
		s := r.Stats
		fmt.Fprintf(tw, "uptime\t%s\n", s.Uptime)
		section(tw, "registration", s.General)
		section(tw, "replies by code", s.Replies)
		section(tw, "dropped without reply", s.Drops)
		section(tw, "binding table", s.Table)
		section(tw, "runtime", s.Runtime)
		section(tw, "kernel datapath", s.Datapath)
		section(tw, "agent advertisements", s.Advert)
		for _, n := range s.Notes {
			fmt.Fprintln(tw, n)
		}
	case r.Redundancy != nil:
		x := r.Redundancy
		fmt.Fprintf(tw, "mode\t%s\nrole\t%s\nreason\t%s\nsynced\t%v\n", x.Mode, x.Role, dash(x.Reason), x.Synced)
		if x.Since != "" {
			fmt.Fprintf(tw, "since\t%s\n", x.Since)
		}
		if len(x.Peers) > 0 {
			// ACKING: whether this peer's silence counts (a held reply
			// becomes 130); TABLES-EQUAL: the last digest exchange (every
			// DigestPeriod) found the same table, not "initialized" (that
			// is STATE).
			fmt.Fprintln(tw, "\nADDRESS\tID\tSTATE\tACKING\tLAST-HEARD\tTABLES-EQUAL")
			for _, p := range x.Peers {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", p.Address, p.ID, p.State, yesNo(p.Acking), p.LastHeard, yesNo(p.InSync))
			}
		}
		section(tw, "counters", x.Counter)
	case r.Info != nil:
		x := r.Info
		fmt.Fprintf(tw, "version\t%s\naddress\t%s\nvirtual address\t%s\ninterface\t%s\nagent id\t%d\nconfig\t%s\nnode entries\t%d\n",
			x.Version, x.Address, dash(x.Virtual), x.Interface, x.AgentID, x.Config, x.Nodes)
		if len(x.Advert) > 0 {
			fmt.Fprintln(tw, "\nagent advertisements:")
			for _, kv := range x.Advert {
				fmt.Fprintf(tw, "  %s\t%s\n", kv[0], kv[1])
			}
		}
	case r.Message != "":
		fmt.Fprintln(tw, r.Message)
	}
}

func section(w io.Writer, title string, cs []console.Counter) {
	if len(cs) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s:\n", title)
	for _, c := range cs {
		fmt.Fprintf(w, "  %s\t%d\n", c.Name, c.Value)
	}
}

func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
