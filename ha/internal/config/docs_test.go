package config

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

const docsPath = "../../../docs/config.md"

// The reference config, the loader and docs/config.md name the same keys:
// every key of rootfs/etc/hagent.toml is documented, every documented key is
// one the loader knows, and the reference config shows every known key.
func TestDocsCoverReference(t *testing.T) {
	ref, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}

	var doc map[string]any
	md, err := toml.Decode(string(ref), &doc)
	if err != nil {
		t.Fatal(err)
	}
	var refKeys []string
	for _, k := range md.Keys() {
		if typ := md.Type(k...); typ == "Hash" || typ == "ArrayHash" {
			continue // sections; their keys are checked
		}
		refKeys = append(refKeys, k.String())
	}
	if len(refKeys) < 50 {
		t.Fatalf("only %d keys found in the reference config", len(refKeys))
	}
	for _, k := range refKeys {
		if !strings.Contains(string(docs), "`"+k+"`") {
			t.Errorf("%s: key %s is not documented in %s", referencePath, k, docsPath)
		}
	}

	// Keys the loader knows, collected while it reads the reference.
	d := &decoder{file: referencePath, pos: scanPositions(ref), seen: map[string]bool{}}
	readRaw(d, doc)
	if len(d.errs) != 0 {
		t.Fatalf("reference: %v", joinSorted(d.errs))
	}
	known := map[string]bool{}
	for k := range d.seen {
		if !strings.Contains(k, ".") {
			continue // the section names themselves
		}
		known[k] = true
	}
	for k := range known {
		if k == "vrrp.track_interfaces" || k == "group.accept_keys" {
			continue // an array of tables: its own keys are listed
		}
		if !slices.Contains(refKeys, k) {
			t.Errorf("%s: known key %s is missing; the reference config shows every key", referencePath, k)
		}
	}

	// Every row of a key table names a known key.
	row := regexp.MustCompile("(?m)^\\| `([a-z_.]+)` \\|")
	rows := row.FindAllStringSubmatch(string(docs), -1)
	documented := map[string]bool{}
	for _, m := range rows {
		documented[m[1]] = true
		if !known[m[1]] {
			t.Errorf("%s documents %s, which the loader does not know", docsPath, m[1])
		}
	}
	for k := range known {
		if !documented[k] {
			t.Errorf("%s has no row for %s", docsPath, k)
		}
	}
}
