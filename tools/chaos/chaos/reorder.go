package chaos

// Reordering without sch_netem (this kernel has neither netem nor fq nor
// etf; it has htb): the bridge port towards the target gets an htb root
// qdisc with two leaf classes, a fast default one and a slow one, and an
// nftables egress chain on the same port sends a random 30 % of the
// group-protocol, registration and VRRP datagrams into the slow class
// (`meta priority set 1:20`: htb takes skb->priority as a class id). A
// datagram held in the slow class is overtaken by the ones after it that
// stayed in the fast class: reordering, with no loss (the slow queue holds
// 1,000 datagrams). Checked by hand between two namespaces: 40 numbered
// 88-byte datagrams 5 ms apart all arrive, in the order 0, 1, 3, 4, 2, 7,
// 5, 6, 10, 11, 12, 8, 14, 9, …

import (
	"bytes"
	"fmt"
	"strings"
)

// slowRate paces the slow class: a lone registration or group update
// (about 100 bytes) waits 12 ms, long enough for the next ones to
// overtake it; a full-MTU table chunk 190 ms; a VRRP advertisement 7 ms
// (the election's timers are seconds). Held datagrams queue behind each
// other, so a burst is held longer: that is reordering at scale too.
const slowRate = "64kbit"

// tc runs iproute2's tc in the LAN namespace.
func tc(lanNS string, args ...string) error {
	out, err := inLAN(lanNS, "", "tc", args...)
	if err != nil {
		return fmt.Errorf("chaos: tc %s in %s: %v: %s", strings.Join(args, " "), lanNS, err, bytes.TrimSpace(out))
	}
	return nil
}

// reorderQdisc installs (on) or removes the two-speed htb on port.
func reorderQdisc(lanNS, port string, on bool) error {
	if !on {
		return tc(lanNS, "qdisc", "del", "dev", port, "root")
	}
	for _, args := range [][]string{
		{"qdisc", "add", "dev", port, "root", "handle", "1:", "htb", "default", "10", "r2q", "1000"},
		{"class", "add", "dev", port, "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit"},
		{"class", "add", "dev", port, "parent", "1:", "classid", "1:20", "htb", "rate", slowRate, "burst", "1b", "cburst", "1b"},
	} {
		if err := tc(lanNS, args...); err != nil {
			return err
		}
	}
	return nil
}

// reorderTable picks the datagrams to hold back, on their way out of the
// bridge to port.
func reorderTable(name, port string, groupPort int) string {
	return fmt.Sprintf(`table netdev %s {
	chain out {
		type filter hook egress device %q priority 0; policy accept;
		udp dport { 434, %d, %d } numgen random mod 100 < 30 counter meta priority set 1:20
		udp sport 434 numgen random mod 100 < 30 counter meta priority set 1:20
		ip protocol 112 numgen random mod 100 < 30 counter meta priority set 1:20
	}
}
`, name, port, groupPort, groupPort+1)
}
