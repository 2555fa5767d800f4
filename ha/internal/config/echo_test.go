package config

import (
	"strings"
	"testing"
)

// A value echoed in an error is quoted and cut: a long value (up to a line
// of 4 KiB gets past the bounds) makes a short message, not a 4 KiB line on
// the serial console.
func TestEchoedValuesAreCapped(t *testing.T) {
	long := strings.Repeat("v", 3000)
	for _, kv := range []string{
		"[agent]\ninterface = \"%s\"",
		"[agent]\nconsole_socket = \"%s\"",
		"[agent]\nlog_level = \"%s\"",
		"[agent]\nencapsulations = [\"%s\"]",
		"[agent]\ntombstone_lifetime = \"%s\"",
		"[agent]\nvirtual_address = \"%s\"",
		"[[node]]\nname = \"%s\"\nhome_address = \"10.0.0.5\"\nspi = 256\nkey = \"hex:00\"",
		"[[node]]\nnai = \"%s x\"\nhome_address = \"10.0.0.5\"\nspi = 256\nkey = \"hex:00\"",
		"[[node]]\nreplay = \"%s\"\nhome_address = \"10.0.0.5\"\nspi = 256\nkey = \"hex:00\"",
		"[[node]]\nalgorithm = \"%s\"\nhome_address = \"10.0.0.5\"\nspi = 256\nkey = \"hex:00\"",
		"[[node]]\npool = \"%s\"\nspi = 256\nkey = \"hex:00\"",
		"[vrrp]\nenabled = true\nnotify_command = \"%s\"",
		"[datapath]\nproxy_arp_mode = \"%s\"",
		"[datapath]\ntunnel_device = \"%s\"",
	} {
		text := "[agent]\ninterface = \"eth0\"\naddress = \"10.0.0.1\"\nhome_network = \"10.0.0.0/8\"\n"
		section := strings.SplitN(kv, "\n", 2)
		if section[0] == "[agent]" {
			text = strings.Replace(text, "[agent]\n", "[agent]\n"+strings.Replace(section[1], "%s", long, 1)+"\n", 1)
			if strings.HasPrefix(section[1], "interface") {
				text = strings.Replace(text, "interface = \"eth0\"\n", "", 1)
			}
		} else {
			text += strings.Replace(kv, "%s", long, 1) + "\n"
		}
		_, err := Parse("echo.toml", []byte(text))
		errs := Errors(err)
		if len(errs) == 0 {
			t.Errorf("%s: accepted", section[1][:strings.Index(section[1], " ")])
			continue
		}
		for _, e := range errs {
			if s := e.Error(); len(s) > 400 || !strings.Contains(s, "(3000 bytes)") && strings.Contains(s, "vvvv") {
				t.Errorf("%.40s: %d-byte message echoes the value uncut: %.200s", section[1], len(s), s)
			}
		}
	}
}
