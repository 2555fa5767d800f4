// Package initd is the image's userspace start-up after u-root's init: it
// brings up the network from the kernel command line and the board file, and
// supervises hagent (restart with backoff, logs on the console). The command
// firmware/cmd/hainit only wires it; everything here is testable on the host.
package initd

import (
	"fmt"
	"net/netip"
	"strings"
)

// IfaceAddr is one hagent.ip=IFACE:ADDR/LEN assignment.
type IfaceAddr struct {
	Iface  string
	Prefix netip.Prefix
}

// Boot is what the kernel command line asks of the start-up.
type Boot struct {
	Addrs    []IfaceAddr
	Gateway  netip.Addr // hagent.gw=ADDR: default route
	Hostname string     // hagent.hostname=NAME
	Config   string     // hagent.config=PATH, default /etc/hagent.toml
	NoAgent  bool       // hagent.run=0: network only, no agent (maintenance)
}

// DefaultConfig is where the image carries the agent's configuration.
const DefaultConfig = "/etc/hagent.toml"

// ParseCmdline reads the hagent.* parameters of a kernel command line
// (/proc/cmdline). Other parameters are ignored; a malformed hagent.*
// parameter is an error that names it.
//
//	hagent.ip=eth0:192.0.2.10/24[,eth1:198.51.100.2/24]   (repeatable)
//	hagent.gw=192.0.2.1
//	hagent.hostname=ha1
//	hagent.config=/etc/other.toml
//	hagent.run=0
func ParseCmdline(cmdline string) (Boot, error) {
	b := Boot{Config: DefaultConfig}
	for _, f := range splitCmdline(cmdline) {
		k, v, _ := strings.Cut(f, "=")
		if !strings.HasPrefix(k, "hagent.") {
			continue
		}
		switch k {
		case "hagent.ip":
			for _, one := range strings.Split(v, ",") {
				ifc, pfx, ok := strings.Cut(one, ":")
				if !ok || ifc == "" {
					return Boot{}, fmt.Errorf("initd: kernel command line: hagent.ip=%s: want IFACE:ADDR/LEN, e.g. eth0:192.0.2.10/24", v)
				}
				p, err := netip.ParsePrefix(pfx)
				if err != nil {
					return Boot{}, fmt.Errorf("initd: kernel command line: hagent.ip=%s: %v", v, err)
				}
				b.Addrs = append(b.Addrs, IfaceAddr{Iface: ifc, Prefix: p})
			}
		case "hagent.gw":
			a, err := netip.ParseAddr(v)
			if err != nil {
				return Boot{}, fmt.Errorf("initd: kernel command line: hagent.gw=%s: %v", v, err)
			}
			b.Gateway = a
		case "hagent.hostname":
			b.Hostname = v
		case "hagent.config":
			if !strings.HasPrefix(v, "/") {
				return Boot{}, fmt.Errorf("initd: kernel command line: hagent.config=%s: want an absolute path", v)
			}
			b.Config = v
		case "hagent.run":
			b.NoAgent = v == "0" || v == "false" || v == "no"
		default:
			return Boot{}, fmt.Errorf("initd: kernel command line: unknown parameter %s (known: hagent.ip, hagent.gw, hagent.hostname, hagent.config, hagent.run)", k)
		}
	}
	return b, nil
}

// splitCmdline splits on blanks, keeping double-quoted runs together and
// dropping the quotes, as the kernel does.
func splitCmdline(s string) []string {
	var out []string
	var cur strings.Builder
	inQ, have := false, false
	for _, c := range s {
		switch {
		case c == '"':
			inQ, have = !inQ, true
		case !inQ && (c == ' ' || c == '\t' || c == '\n'):
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(c)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}
