package config

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// fleetRouter is a [[node]] of one router of a fleet on home, with nai.
func fleetRouter(home, nai, extra string) string {
	return "[[node]]\nhome_address = \"" + home + "\"\nnai = \"" + nai + "\"\nspi = 256\nkey = \"text:0123456789abcdef\"\n" + extra + "\n"
}

const sharedLine = "shared_home_addresses = [\"192.0.2.200\"]\n"

func TestSharedHomeAddresses(t *testing.T) {
	c := mustParse(t, base+sharedLine+
		fleetRouter("192.0.2.200", "mr1@fleet.example", `mobile_networks = ["10.1.0.0/24"]`)+
		fleetRouter("192.0.2.200", "mr2@fleet.example", `mobile_networks = ["10.2.0.0/24"]`)+
		router("192.0.2.9", ""))
	sh := netip.MustParseAddr("192.0.2.200")
	if !slices.Equal(c.Agent.SharedHomeAddresses, []netip.Addr{sh}) || !c.Agent.SharedHome(sh) || c.Agent.SharedHome(netip.MustParseAddr("192.0.2.9")) {
		t.Fatalf("shared %v", c.Agent.SharedHomeAddresses)
	}
	if len(c.Nodes) != 3 || c.Nodes[0].HomeAddress != sh || c.Nodes[1].HomeAddress != sh {
		t.Fatalf("nodes %+v", c.Nodes)
	}
	// Not listed: two entries with one home address are still refused.
	_, err := Parse("x.toml", []byte(base+fleetRouter("192.0.2.200", "a@x", "")+fleetRouter("192.0.2.200", "b@x", "")))
	if err == nil || !strings.Contains(err.Error(), "x.toml:12: node[2].home_address 192.0.2.200 is already the home address of node[1] (line 5): each address belongs to one node") {
		t.Fatalf("unlisted shared address: %v", err)
	}
}

func TestSharedHomeAddressErrors(t *testing.T) {
	long := strings.Repeat("m", 50) + "@fleet.example"
	for _, tc := range []struct{ name, text, want string }{
		{"no nai", sharedLine + router("192.0.2.200", ""),
			`x.toml:7: node[1].home_address 192.0.2.200 is shared (agent.shared_home_addresses): add nai = "router@realm", the NAI tells this router's binding from the others'`},
		{"nai too long", sharedLine + fleetRouter("192.0.2.200", long, ""),
			`x.toml:8: node[1].nai is 64 bytes: a router on a shared home address has an NAI of at most 56 bytes (the binding table keeps it whole, as the router's identity)`},
		{"in a pool", sharedLine + "[[node]]\npool = \"192.0.2.192/26\"\nspi = 300\nkey = \"text:0123456789abcdef\"\n",
			`x.toml:5: agent.shared_home_addresses 192.0.2.200 lies inside node[1].pool 192.0.2.192/26 of node[1] (line 6): a shared address is nobody's own, carve it out of the pool`},
		{"outside", "shared_home_addresses = [\"198.51.100.1\"]\n", `x.toml:5: agent.shared_home_addresses[1] 198.51.100.1 is outside agent.home_network 192.0.2.0/24`},
		{"agent", "shared_home_addresses = [\"192.0.2.2\"]\n", `x.toml:5: agent.shared_home_addresses[1] 192.0.2.2 is agent.address`},
		{"twice", "shared_home_addresses = [\"192.0.2.200\", \"192.0.2.200\"]\n", `x.toml:5: agent.shared_home_addresses[2] 192.0.2.200 is listed twice`},
		{"broadcast", "shared_home_addresses = [\"192.0.2.255\"]\n", `x.toml:5: agent.shared_home_addresses[1] 192.0.2.255 is the broadcast address of 192.0.2.0/24`},
		{"not an address", "shared_home_addresses = [\"fleet\"]\n", `x.toml:5: agent.shared_home_addresses[1] "fleet" is not an IP address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.toml", []byte(base+tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

// Which addresses are shared decides how bindings are keyed: a reload
// cannot change it.
func TestSharedHomeAddressesNeedRestart(t *testing.T) {
	old := mustParse(t, base)
	nw := mustParse(t, base+sharedLine)
	if got := RestartNeeded(old, nw); !slices.Equal(got, []string{"agent.shared_home_addresses"}) {
		t.Fatalf("RestartNeeded: %v", got)
	}
}
