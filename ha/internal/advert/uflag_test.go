package advert

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

// A home agent that offers UDP tunnelling (RFC 3519 §3.4) sets U, bit 8 of
// the flags word: goldenHA with flags 0x2480 instead of 0x2400, checksum
// 0xcde3 - 0x0080 in one's complement = 0xcd63.
const goldenHAUDP = `
09 00 cd 63 01 02 00 09   c0 00 02 01 00 00 00 00
10 06 00 00 07 08 24 80   13 01 18   00`

func TestUFlagGolden(t *testing.T) {
	a := haAdvert()
	a.Flags |= FlagU
	got, err := a.AppendBinary([]byte{0xee})
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, goldenHAUDP)
	if got[0] != 0xee || !bytes.Equal(got[1:], want) {
		t.Fatalf("got\n% x\nwant\n% x", got[1:], want)
	}
	var back Advertisement
	if err := back.UnmarshalBinary(want); err != nil {
		t.Fatal(err)
	}
	if back.Flags != FlagH|FlagG|FlagU || back.Flags.String() != "H G U" {
		t.Fatalf("flags %#04x %q", uint16(back.Flags), back.Flags)
	}
}

func TestTsharkUFlag(t *testing.T) {
	tshark := needTshark(t)
	a := haAdvert()
	a.Flags |= FlagU
	b, _ := a.AppendBinary(nil)
	file := writePcap(t, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("224.0.0.1"), b)
	lines := tsharkFields(t, tshark, file, "icmp.checksum.status", "icmp.mip.flags", "icmp.mip.h", "icmp.mip.g", "icmp.mip.u", "icmp.mip.x")
	got := strings.NewReplacer("True", "1", "False", "0").Replace(strings.Join(lines, "\n"))
	if want := "1|0x2480|1|1|1|0"; got != want {
		t.Errorf("tshark: got %s, want %s", got, want)
	}
	if p := tsharkProblems(t, tshark, file); p != "" {
		t.Errorf("tshark flags problems:\n%s", p)
	}
}
