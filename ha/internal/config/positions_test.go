package config

import (
	"os"
	"strings"
	"testing"
)

func TestScanPositions(t *testing.T) {
	text := `# comment
top = 1
[agent]
interface = "eth0"  # trailing [comment]
"quoted.key" = 2
dotted.inner = 3
multi = """
not_a_key = 1
[not_a_table]
"""
lit = '''
x = 2 '''
arr = [
  "a", # ] inside a comment
  "]",
  { k = 1 },
]
after = 4

[[node]]
spi = 1
[[node]]
spi = 2
[node.sub]
x = 1
[[node.list]]
y = 1
[[node.list]]
y = 2
[ vrrp . "track" ]
z = 'a"b'
  indented = 5
esc = "a\"b = c"
crlf = 1` + "\r\n" + `next = 2
`
	p := scanPositions([]byte(text))
	want := map[string]int{
		"top":                  2,
		"agent":                3,
		"agent.interface":      4,
		"agent.quoted.key":     5,
		"agent.dotted":         6,
		"agent.dotted.inner":   6,
		"agent.multi":          7,
		"agent.lit":            11,
		"agent.arr":            13,
		"agent.after":          18,
		"node[1]":              20,
		"node[1].spi":          21,
		"node[2]":              22,
		"node[2].spi":          23,
		"node[2].sub":          24,
		"node[2].sub.x":        25,
		"node[2].list[1]":      26,
		"node[2].list[1].y":    27,
		"node[2].list[2].y":    29,
		"vrrp.track":           30,
		"vrrp.track.z":         31,
		"vrrp.track.indented":  32,
		"vrrp.track.esc":       33,
		"vrrp.track.crlf":      34,
		"vrrp.track.next":      35,
		"agent.arr[3].k":       13, // inline table: falls back to its key
		"node[2].list[2].y.zz": 29,
	}
	for k, l := range want {
		if got := p.line(k); got != l {
			t.Errorf("line(%q) = %d, want %d", k, got, l)
		}
	}
	for _, k := range []string{"agent.not_a_key", "not_a_table", "agent.x"} {
		if _, ok := p[k]; ok {
			t.Errorf("%q recorded: it is inside a string", k)
		}
	}
	if p.line("nothing.here") != 0 {
		t.Errorf("unknown path has a line")
	}
}

// Every key of the reference config gets its own line, the same one
// BurntSushi/toml reports for it where that is unambiguous.
func TestScanPositionsReference(t *testing.T) {
	data, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	p := scanPositions(data)
	lines := strings.Split(string(data), "\n")
	for path, l := range p {
		last := path[strings.LastIndexAny(path, ".[")+1:]
		last = strings.TrimSuffix(last, "]")
		if !strings.Contains(lines[l-1], strings.Trim(last, "0123456789")) {
			t.Errorf("%s at line %d: %q", path, l, lines[l-1])
		}
	}
	if p["node[3].pool"] == 0 || p["vrrp.track_interfaces[1].weight"] == 0 {
		t.Errorf("missing positions: %v", p)
	}
}
