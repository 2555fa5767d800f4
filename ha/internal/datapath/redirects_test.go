package datapath

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSetupRedirects: Setup turns redirects off, both ways, on every
// interface it sets forwarding on (home, tunnel, UDP uplink) and writes
// "all"'s send_redirects; Config.SendRedirects leaves both alone.
func TestSetupRedirects(t *testing.T) {
	off := [][]byte{attrU32(nil, devconfSendRedirects, 0), attrU32(nil, devconfAcceptRedirects, 0)}
	for _, keep := range []bool{false, true} {
		k, f := newFake(t, Config{HomeIfname: "eth0", SendRedirects: keep})
		devs := map[string][]byte{"eth0": linkBody(2, "eth0", "", false)}
		linkKernel(f, devs, 0)
		withDump(f)
		var wrote string
		k.sysctl = func(path, val string) error { wrote += path + "=" + val; return nil }
		if err := k.Setup(); err != nil {
			t.Fatal(err)
		}
		confs := map[uint32]bool{}
		for _, m := range f.reqs {
			l, _ := parseLink(m.Data)
			if m.Header.Type != unix.RTM_NEWLINK || l.Index == 0 {
				continue
			}
			confs[l.Index] = true
			for _, a := range off {
				if got := bytes.Contains(m.Data, a); got == keep {
					t.Errorf("SendRedirects %v: conf of ifindex %d has %x: %v", keep, l.Index, a, got)
				}
			}
		}
		if !confs[2] || !confs[5] {
			t.Errorf("conf requests for ifindexes %v, want the home (2) and the tunnel (5)", confs)
		}
		want := allSendRedirects + "=0"
		if keep {
			want = ""
		}
		if wrote != want {
			t.Errorf("SendRedirects %v: wrote %q, want %q", keep, wrote, want)
		}
	}
}
