package itest

import (
	"strconv"
	"strings"
	"testing"

	"github.com/hagent/hagent/tools/lab"
)

// outRedirects is the Icmp OutRedirects counter of h's namespace
// (/proc/net/snmp): the ICMP redirects its kernel has sent.
func outRedirects(t *testing.T, h *lab.Host) uint64 {
	t.Helper()
	out, err := h.Run("cat", "/proc/net/snmp")
	if err != nil {
		t.Fatalf("%s: /proc/net/snmp: %v: %s", h.Name, err, out)
	}
	var names []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Icmp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "OutRedirects" && i < len(f) {
				v, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					t.Fatalf("%s: OutRedirects %q: %v", h.Name, f[i], err)
				}
				return v
			}
		}
	}
	t.Fatalf("%s: no Icmp OutRedirects in /proc/net/snmp:\n%s", h.Name, out)
	return 0
}
