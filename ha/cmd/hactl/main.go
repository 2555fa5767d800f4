// Command hactl is the operator's console client for a running hagent:
//
//	hactl show bindings [ADDR] | redundancy | violations | stats | version
//	hactl clear binding ADDR|NAI
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

const usage = `usage: hactl [FLAGS] COMMAND [FLAGS]
commands (any unambiguous prefix will do, as on IOS: sh red, sh bind 192.0.2.10):
  show bindings [ADDR]   mobility bindings: a table, or one binding in detail
  show redundancy        the election (VRRP/HSRP), the group's peers, replication counters
  show violations        the last authentication failures (time, source, home, SPI, reason)
  show stats             counters per reply code and per drop reason, memory
  show version           agent version, addresses, config file
  clear binding ADDR|NAI remove the binding of home address ADDR, or of the node with
                         NAI (a fleet router on a shared home address); replicated to the group
  help                   this text
flags (before or after the command):
`

// commands are the console commands and how many arguments each takes
// (min, max). hactl checks them before dialling, so that a typo is a
// usage error even when no agent runs. "show agent" is the agent's alias
// of "show version".
var commands = []struct {
	name     string
	min, max int
	hidden   bool
}{
	{"show bindings", 0, 1, false},
	{"show stats", 0, 0, false},
	{"show redundancy", 0, 0, false},
	{"show version", 0, 0, false},
	{"show agent", 0, 0, true},
	{"clear binding", 1, 1, false},
	{"show violations", 0, 0, false},
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hactl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	help := func(w io.Writer) { fs.SetOutput(w); fmt.Fprint(w, usage); fs.PrintDefaults() }
	fs.Usage = func() {} // Parse would print it to stderr even for -h; see below
	socket := fs.String("socket", console.DefaultSocket, "the agent's console socket")
	asJSON := fs.Bool("json", false, "print the agent's answer as JSON")
	limit := fs.Int("limit", 0, "rows of show bindings and show violations (0 = agent default, -1 = all)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the agent")
	words, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			// Help asked for is an answer, not an error: stdout, exit 0.
			help(stdout)
			return 0
		}
		help(stderr) // after Parse's own line naming the bad flag
		return 2
	}
	if len(words) >= 1 && len(words) <= 2 && strings.HasPrefix("help", words[0]) && words[0] != "" {
		help(stdout)
		return 0
	}
	name, cargs, msg := resolve(words)
	if msg != "" {
		fmt.Fprintf(stderr, "hactl: %s (hactl help lists the commands and flags)\n", msg)
		return 2
	}
	req := console.Request{Cmd: name, Args: cargs, Limit: *limit}
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

// parseInterspersed parses flags wherever they stand, before, between or
// after the command's words (`hactl show bindings -limit -1 -json`), and
// returns the words. "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var words []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return words, nil
		}
		// Parse stops at the first non-flag, or after a "--" it consumed.
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(words, rest...), nil
		}
		words = append(words, rest[0])
		args = rest[1:]
	}
}

// resolve maps the words to a console command, accepting any unambiguous
// prefix of each keyword as IOS does; it returns the command, its
// arguments, or why the words are not a command.
func resolve(words []string) (name string, args []string, msg string) {
	var names []string
	for _, c := range commands {
		if !c.hidden {
			names = append(names, c.name)
		}
	}
	valid := "valid commands: " + strings.Join(names, ", ")
	if len(words) == 0 {
		return "", nil, "no command given; " + valid
	}
	verb, m := match(words[0], func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, c := range commands {
			v, _, _ := strings.Cut(c.name, " ")
			if !seen[v] && !yield(v) {
				return
			}
			seen[v] = true
		}
	})
	if m != "" {
		return "", nil, fmt.Sprintf("%q is %s; %s", words[0], m, valid)
	}
	if len(words) == 1 {
		return "", nil, fmt.Sprintf("%q is not a command; %s", words[0], valid)
	}
	noun, m := match(words[1], func(yield func(string) bool) {
		for _, c := range commands {
			v, n, _ := strings.Cut(c.name, " ")
			if v == verb && !c.hidden && !yield(n) {
				return
			}
		}
		// The hidden alias matches only when written out.
		if verb == "show" && words[1] == "agent" {
			yield("agent")
		}
	})
	if m != "" {
		return "", nil, fmt.Sprintf("unknown command %q (%s); %s", verb+" "+words[1], m, valid)
	}
	name = verb + " " + noun
	for _, c := range commands {
		if c.name != name {
			continue
		}
		n := len(words) - 2
		switch {
		case c.min == 1 && n != 1:
			return "", nil, fmt.Sprintf("%s takes one home address (e.g. %s 192.0.2.10)", name, name)
		case n > c.max && c.max == 0:
			return "", nil, fmt.Sprintf("%s takes no arguments (got %q)", name, strings.Join(words[2:], " "))
		case n > c.max:
			return "", nil, fmt.Sprintf("%s takes at most one home address (got %q)", name, strings.Join(words[2:], " "))
		}
		return name, words[2:], ""
	}
	return "", nil, fmt.Sprintf("unknown command %q; %s", name, valid)
}

// match finds the one keyword that word is a prefix of (an exact match
// wins), or says why none is: "not a keyword" or "ambiguous: a, b".
func match(word string, keywords func(func(string) bool)) (string, string) {
	var hits []string
	exact := ""
	keywords(func(k string) bool {
		if k == word {
			exact = k
		}
		if word != "" && strings.HasPrefix(k, word) {
			hits = append(hits, k)
		}
		return true
	})
	switch {
	case exact != "":
		return exact, ""
	case len(hits) == 1:
		return hits[0], ""
	case len(hits) > 1:
		return "", "ambiguous: " + strings.Join(hits, ", ")
	}
	return "", "not a keyword"
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
	switch {
	case r.Bindings != nil && r.Bindings.Detail:
		printBindingDetail(w, r.Bindings)
	case r.Bindings != nil:
		printBindings(w, r.Bindings)
	case r.Stats != nil:
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
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
		tw.Flush()
	case r.Redundancy != nil:
		printRedundancy(w, r.Redundancy)
	case r.Violations != nil:
		printViolations(w, r.Violations)
	case r.Info != nil:
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		x := r.Info
		fmt.Fprintf(tw, "version\t%s\naddress\t%s\nvirtual address\t%s\ninterface\t%s\nagent id\t%d\nconfig\t%s\nnode entries\t%d\n",
			x.Version, x.Address, dash(x.Virtual), x.Interface, x.AgentID, x.Config, x.Nodes)
		if len(x.Advert) > 0 {
			fmt.Fprintln(tw, "\nagent advertisements:")
			for _, kv := range x.Advert {
				fmt.Fprintf(tw, "  %s\t%s\n", kv[0], kv[1])
			}
		}
		tw.Flush()
	case r.Message != "":
		fmt.Fprintln(w, r.Message)
	}
}

func section(w io.Writer, title string, cs []console.Counter) {
	if len(cs) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s:\n", title)
	for _, c := range cs {
		fmt.Fprintf(w, "  %s\t%s\n", c.Name, value(c))
	}
}

// value prints a counter; byte counts in MB, as an operator reads memory.
func value(c console.Counter) string {
	if c.Unit == "bytes" {
		return fmt.Sprintf("%.1f MB", float64(c.Value)/1e6)
	}
	return fmt.Sprint(c.Value)
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
