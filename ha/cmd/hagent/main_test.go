package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckReferenceConfig(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-check", "-config", "../../../rootfs/etc/hagent.toml"}, &out, &errb); code != 0 {
		t.Fatalf("hagent -check on the shipped config: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "ok (") {
		t.Fatalf("no ok line:\n%s", out.String())
	}
}

func TestCheckBadConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(p, []byte("[agent]\ninterface = \"eth0\"\naddress = \"192.0.2.1\"\nhome_network = \"192.0.2.0/24\"\ncapacity = \"ten\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"-check", "-config", p}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if want := p + ":5: agent.capacity"; !strings.Contains(errb.String(), want) {
		t.Fatalf("error does not name file, line and key (%q):\n%s", want, errb.String())
	}
}

func TestFlags(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "hagent ") {
		t.Fatalf("-version: exit %d %q", code, out.String())
	}
	if code := run([]string{"stray"}, &out, &errb); code != 2 {
		t.Fatalf("stray argument: exit %d, want 2", code)
	}
	if code := run([]string{"-config", "/nonexistent/hagent.toml"}, &out, &errb); code != 1 {
		t.Fatalf("missing config: exit %d, want 1", code)
	}
}

func TestHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-h"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "-config") || errb.Len() != 0 {
		t.Fatalf("-h: exit %d, stdout %q, stderr %q; want 0, the usage on stdout only", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"-bogus"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "-bogus") || out.Len() != 0 {
		t.Fatalf("unknown flag: exit %d, stderr %q; want 2 naming the flag", code, errb.String())
	}
}
