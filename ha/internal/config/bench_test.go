package config

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// largeConfig has n single-address nodes in 10.0.0.0/8 and a few pools.
func largeConfig(n int) []byte {
	var b strings.Builder
	b.WriteString("[agent]\ninterface = \"eth0\"\naddress = \"10.0.0.1\"\nhome_network = \"10.0.0.0/8\"\ncapacity = 100000\n")
	for i := range n {
		fmt.Fprintf(&b, "[[node]]\nhome_address = \"10.%d.%d.%d\"\nnai = \"mn%d@example.net\"\nspi = %d\nkey = \"hex:8899aabbccddeeff0011223344556677\"\n",
			1+i/65536, i/256%256, i%256, i, 256+i)
	}
	for i := range 16 {
		fmt.Fprintf(&b, "[[node]]\npool = \"10.200.%d.0/24\"\nspi = 256\nkey = \"text:0123456789abcdef\"\n", i)
	}
	return []byte(b.String())
}

func TestLargeConfig(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 2000
	}
	c, err := Parse("large.toml", largeConfig(n))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nodes) != n+16 || c.Nodes[n-1].Line == 0 {
		t.Fatalf("nodes: %d", len(c.Nodes))
	}
}

func BenchmarkParseReference(b *testing.B) {
	data, err := os.ReadFile(referencePath)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("ref.toml", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse10kNodes(b *testing.B) {
	data := largeConfig(10000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("large.toml", data); err != nil {
			b.Fatal(err)
		}
	}
}
