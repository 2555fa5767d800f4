package mip

import (
	"strings"
	"testing"
)

// TestTsharkMobileNet checks the RFC 5177 goldens against Wireshark's
// dissector: a request with two prefixes, a reply acknowledging both, and a
// reply with the implicit acknowledgement, every field where the RFC puts it
// and no malformed packet.
func TestTsharkMobileNet(t *testing.T) {
	tshark := needTshark(t)
	file := writePcap(t, unhex(t, goldenMobileNetRequestHex), unhex(t, goldenMobileNetReplyHex),
		unhex(t, goldenMobileNetImplicitHex))
	fields := []string{"mip.type", "mip.ext.type", "mip.ext.mne.subtype", "mip.ext.mne.code",
		"mip.ext.mne.prefix_length", "mip.ext.mne.prefix", "mip.auth.spi", "_ws.malformed", "_ws.expert"}
	lines := tsharkFields(t, tshark, file, fields)
	want := []string{
		// type exts subtype code plen prefix spi malformed expert
		"1|131,148,148,32|0,0||24,25|10.9.1.0,10.9.2.0|0x00000100||",
		"3|131,148,148,32|1,1|0,2|24,25|10.9.1.0,10.9.2.0|0x00000100||",
		"3|131,148,32|2|0|24|10.9.3.0|0x00000100||",
	}
	if len(lines) != len(want) {
		t.Fatalf("tshark printed %d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("packet %d:\n got %s\nwant %s", i+1, lines[i], w)
		}
	}
}
