package config

import (
	"os"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	if ref, err := os.ReadFile(referencePath); err == nil {
		f.Add(ref)
	}
	f.Add([]byte(base))
	f.Add([]byte(base + node(`pool = "192.0.2.128/25"`) + "\n" + node(`home_address = "192.0.2.130"`)))
	f.Add([]byte(base + "[vrrp]\ntrack_interfaces = [{interface = \"eth1\", weight = 5}]\n[[vrrp.track_interfaces]]\n"))
	f.Add([]byte("[agent]\ncapacity = \"ten\"\nx = \"\"\"\na\n\"\"\"\n[[node]]\nkey = 'hex:zz'\n"))
	f.Add([]byte("a = [\n1,\n2]\n[[b.c]]\n[b]\n"))
	f.Add([]byte(base + "[nat]\nudp_tunnel = true\nkeepalive_interval = \"25s\"\n" + node(`home_address = "192.0.2.9"`+"\nmobile_networks = [\"10.1.0.0/24\", \"10.1.0.0/16\"]\nudp_tunnel = false")))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.toml", data)
		if err == nil {
			if c == nil || c.Path != "f.toml" {
				t.Fatalf("nil config without error")
			}
			return
		}
		if c != nil {
			t.Fatalf("config with error")
		}
		nlines := strings.Count(string(data), "\n") + 1
		prev := 0
		for _, e := range Errors(err) {
			if e.File != "f.toml" || e.Msg == "" {
				t.Fatalf("malformed error %#v", e)
			}
			if e.Line < prev || e.Line > nlines {
				t.Fatalf("line %d out of order or beyond %d lines: %v", e.Line, nlines, err)
			}
			prev = e.Line
		}
	})
}
