package mip

import (
	"encoding/binary"
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

// writePcap writes UDP payloads as IPv4 packets 192.0.2.10:434 → 192.0.2.1:434
// in a LINKTYPE_RAW capture.
func writePcap(t *testing.T, payloads ...[]byte) string {
	t.Helper()
	be := binary.BigEndian
	f := make([]byte, 24)
	be.PutUint32(f[0:], 0xa1b2c3d4)
	be.PutUint16(f[4:], 2)
	be.PutUint16(f[6:], 4)
	be.PutUint32(f[16:], 65535)
	be.PutUint32(f[20:], 101) // LINKTYPE_RAW
	for i, p := range payloads {
		pkt := make([]byte, 28, 28+len(p))
		pkt[0], pkt[8], pkt[9] = 0x45, 64, 17
		be.PutUint16(pkt[2:], uint16(28+len(p)))
		copy(pkt[12:], []byte{192, 0, 2, 10, 192, 0, 2, 1})
		var sum uint32
		for j := 0; j < 20; j += 2 {
			sum += uint32(be.Uint16(pkt[j:]))
		}
		for sum > 0xffff {
			sum = sum>>16 + sum&0xffff
		}
		be.PutUint16(pkt[10:], ^uint16(sum))
		be.PutUint16(pkt[20:], Port)
		be.PutUint16(pkt[22:], Port)
		be.PutUint16(pkt[24:], uint16(8+len(p)))
		pkt = append(pkt, p...)
		rec := make([]byte, 16)
		be.PutUint32(rec[0:], uint32(1700000000+i))
		be.PutUint32(rec[8:], uint32(len(pkt)))
		be.PutUint32(rec[12:], uint32(len(pkt)))
		f = append(append(f, rec...), pkt...)
	}
	name := filepath.Join(t.TempDir(), "mip.pcap")
	if err := os.WriteFile(name, f, 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestTsharkDecodes checks our goldens against an independent decoder:
// tsharkFields decodes file with tshark: a line per packet, the fields'
// values separated by |, repeated ones joined by commas, booleans as 1/0
// (tshark prints 1/0 or True/False by version).
func tsharkFields(t *testing.T, tshark, file string, fields []string) []string {
	t.Helper()
	args := []string{"-n", "-r", file, "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command(tshark, args...).Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	out = []byte(strings.NewReplacer("True", "1", "False", "0").Replace(string(out)))
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// Wireshark's Mobile IP dissector must read the same fields we wrote.
func TestTsharkDecodes(t *testing.T) {
	tshark := needTshark(t)
	h := NewHMACMD5(testKey)
	fh := testRequest()
	fh.NAI = nil
	withFH, _ := fh.AppendBinary(nil)
	withFH = AppendMHAuth(withFH, 0, 0x01020304, h)
	withFH = AppendFHAuth(withFH, 0, 9, h)
	file := writePcap(t, unhex(t, goldenRequestHex), unhex(t, goldenReplyHex), withFH)
	fields := []string{"mip.type", "mip.flags", "mip.t", "mip.g", "mip.life", "mip.homeaddr", "mip.haaddr",
		"mip.coa", "mip.ident", "mip.code", "mip.ext.type", "mip.auth.spi", "mip.auth.auth", "mip.nai", "_ws.malformed"}
	lines := tsharkFields(t, tshark, file, fields)
	// Wireshark shows the Identification as an NTP timestamp: an
	// independent check of TimestampTime.
	ident := TimestampTime(0xe5a7a441b2f38920).UTC().Format("Jan _2, 2006 15:04:05.000000000 UTC")
	if ident != "Feb  4, 2022 13:10:25.699028559 UTC" {
		t.Errorf("TimestampTime(golden ID) = %s, tshark says Feb  4, 2022 13:10:25.699028559 UTC", ident)
	}
	want := []string{
		// type flags T G life home ha coa ident code exts spi auth nai malformed
		"1|0x0a|1|1|1800|10.1.0.5|192.0.2.1|198.51.100.7|" + ident + "||131,32|0x00000100|a023357f42e8a7e642e7d2cc3f2cd031|mn1@example.net|",
		"3||||1800|10.1.0.5|192.0.2.1||" + ident + "|0|131,32|0x00000100|126b3617c7add95dfead70e2c03b82bb|mn1@example.net|",
		"1|0x0a|1|1|1800|10.1.0.5|192.0.2.1|198.51.100.7|" + ident + "||32,34|0x01020304,0x00000009|",
	}
	if len(lines) != len(want) {
		t.Fatalf("tshark printed %d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i, w := range want {
		got := lines[i]
		if !strings.HasPrefix(got, w) {
			t.Errorf("packet %d:\n got %s\nwant %s…", i+1, got, w)
		}
		if strings.HasSuffix(got, "|1") || strings.Contains(got, "Malformed") {
			t.Errorf("packet %d: tshark reports it malformed: %s", i+1, got)
		}
	}
}
