package config

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/hagent/hagent/ha/internal/config/hostiletoml"
)

// Every hostile shape is refused before the parser sees it, naming the
// line; the limits are checked in one linear pass.
func TestHostileFilesRefusedBeforeParsing(t *testing.T) {
	for _, h := range hostiletoml.Files() {
		t.Run(h.Name, func(t *testing.T) {
			_, err := Parse("h.toml", h.Text)
			errs := Errors(err)
			if len(errs) != 1 {
				t.Fatalf("%d errors, want the one bound exceeded: %.300v", len(errs), err)
			}
			if e := errs[0]; e.Line != h.Line || !strings.Contains(e.Msg, h.Want) {
				t.Fatalf("got %v; want line %d and %q", e, h.Line, h.Want)
			}
		})
	}
}

// What a hagent.toml legitimately holds passes: brackets, dots, quotes and
// '#' inside strings and comments count for nothing.
func TestBoundsIgnoreStringsAndComments(t *testing.T) {
	deep := strings.Repeat("[{", 20)
	text := hostileBaseText + `# [[[[[[[[[[[[ a.b.c.d.e.f.g.h.i.j = {{{{{{{{{{
[vrrp]
notify_command = "/a.b/c.d/e.f/g.h/i.j/k.l/m.n/o.p/q.r/` + deep + `"
track_interfaces = [ { interface = "eth1", weight = 10 }, # ` + deep + `
  { interface = "eth2" } ]
[[node]]
name = 'a.b.c.d.e.f.g.h.i.j.k'
home_address = "10.0.0.5"
spi = 256
key = """hex:00112233445566778899aabbccddeeff
` + deep + `"""
"a.b.c.d.e.f.g.h.i.j" = 1
`
	if e := checkBounds([]byte(text)); e != nil {
		t.Fatalf("legitimate text refused: line %d: %s", e.line, e.msg)
	}
	ref, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	if e := checkBounds(ref); e != nil {
		t.Fatalf("the shipped config refused: line %d: %s", e.line, e.msg)
	}
	if e := checkBounds(largeConfig(10000)); e != nil {
		t.Fatalf("10,000 nodes refused: line %d: %s", e.line, e.msg)
	}
}

const hostileBaseText = "[agent]\ninterface = \"eth0\"\naddress = \"10.0.0.1\"\nhome_network = \"10.0.0.0/8\"\n"

// Load reads at most one byte past the limit, whatever the file's size.
func TestLoadReadsABoundedPrefix(t *testing.T) {
	_, err := Load("/dev/zero") // endless: os.ReadFile would never return
	var ce *Error
	if !errors.As(err, &ce) || !strings.Contains(ce.Msg, "larger than") {
		t.Fatalf("Load(/dev/zero) = %v, want the size refusal", err)
	}
}

// A file of thousands of problems reports the first ones and a count.
func TestReportedProblemsAreBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString(hostileBaseText)
	for i := range 1000 {
		b.WriteString("unknown_" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + "_" + strings.Repeat("y", i/26) + " = 1\n")
	}
	_, err := Parse("many.toml", []byte(b.String()))
	errs := Errors(err)
	if len(errs) != maxReported+1 || !strings.Contains(errs[maxReported].Msg, "more problems") {
		t.Fatalf("%d problems reported, want %d and a count of the rest", len(errs), maxReported+1)
	}
}

// The costliest shapes the bounds admit are admitted (the -check and
// reload tests measure what parsing them costs).
func TestCostliestAdmittedShapes(t *testing.T) {
	for _, h := range hostiletoml.WithinBounds() {
		if e := checkBounds(h.Text); e != nil {
			t.Errorf("%s: refused by the bounds at line %d: %s", h.Name, e.line, e.msg)
		}
	}
}
