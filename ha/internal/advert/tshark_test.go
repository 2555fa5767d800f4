package advert

import (
	"encoding/binary"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needTshark skips (or, under HAGENT_TEST_STRICT=1, fails) without tshark.
func needTshark(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped under -short: runs tshark")
	}
	p, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("HAGENT_TEST_STRICT") == "1" {
			t.Fatal("tshark missing (apt-get install tshark)")
		}
		t.Skip("tshark missing (apt-get install tshark)")
	}
	return p
}

// writePcap writes ICMP messages as IPv4 packets src → dst, TTL 1, in a
// LINKTYPE_RAW capture.
func writePcap(t *testing.T, src, dst netip.Addr, msgs ...[]byte) string {
	t.Helper()
	be := binary.BigEndian
	f := make([]byte, 24)
	be.PutUint32(f[0:], 0xa1b2c3d4)
	be.PutUint16(f[4:], 2)
	be.PutUint16(f[6:], 4)
	be.PutUint32(f[16:], 65535)
	be.PutUint32(f[20:], 101) // LINKTYPE_RAW
	for i, m := range msgs {
		pkt := append(appendIPHeader(nil, src, dst, 1, len(m)), m...)
		rec := make([]byte, 16)
		be.PutUint32(rec[0:], uint32(1700000000+i))
		be.PutUint32(rec[8:], uint32(len(pkt)))
		be.PutUint32(rec[12:], uint32(len(pkt)))
		f = append(append(f, rec...), pkt...)
	}
	name := filepath.Join(t.TempDir(), "advert.pcap")
	if err := os.WriteFile(name, f, 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// tsharkFields runs tshark over file and returns one line per packet.
func tsharkFields(t *testing.T, tshark, file string, fields ...string) []string {
	t.Helper()
	args := []string{"-n", "-r", file, "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command(tshark, args...).Output()
	if err != nil {
		t.Fatalf("tshark %s: %v", strings.Join(args, " "), err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// tsharkProblems returns the packets tshark flags as malformed or with an
// expert note of warning severity or worse.
func tsharkProblems(t *testing.T, tshark, file string) string {
	t.Helper()
	out, err := exec.Command(tshark, "-n", "-r", file, "-Y", "_ws.malformed || _ws.expert.severity >= warning").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestTsharkDecodes checks the goldens against an independent decoder:
// Wireshark reads an ICMP router advertisement with the Mobile IP
// extensions and the same field values we wrote, with a good checksum.
func TestTsharkDecodes(t *testing.T) {
	tshark := needTshark(t)
	ha, fa := haAdvert(), faAdvert()
	b1, _ := ha.AppendBinary(nil)
	b2, _ := fa.AppendBinary(nil)
	sol, _ := Solicitation{}.AppendBinary(nil)
	file := writePcap(t, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("224.0.0.1"), b1, b2, sol)
	lines := tsharkFields(t, tshark, file, "icmp.type", "icmp.code", "icmp.checksum.status", "icmp.num_addrs",
		"icmp.addr_entry_size", "icmp.lifetime", "icmp.router_address", "icmp.pref_level", "icmp.mip.type",
		"icmp.mip.length", "icmp.mip.seq", "icmp.mip.life", "icmp.mip.flags", "icmp.mip.h", "icmp.mip.g",
		"icmp.mip.prefixlength", "icmp.mip.coa")
	want := []string{
		"9|0|1|1|2|9|192.0.2.1|0|16,19,0|6,1|0|1800|0x2400|1|1|24|",
		"9|16|1|2|2|300|10.0.0.1,10.0.0.2|5,-2147483648|16|14|256|65535|0x9100|0|0||10.0.0.1,10.0.0.2",
		"10|0|1||||||||||||||",
	}
	if len(lines) != len(want) {
		t.Fatalf("tshark printed %d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i, w := range want {
		got := strings.NewReplacer("True", "1", "False", "0").Replace(lines[i])
		if got != w {
			t.Errorf("packet %d:\n got %s\nwant %s", i+1, got, w)
		}
	}
	if p := tsharkProblems(t, tshark, file); p != "" {
		t.Errorf("tshark flags problems:\n%s", p)
	}
}
