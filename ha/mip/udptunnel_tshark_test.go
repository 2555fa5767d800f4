package mip

import (
	"encoding/binary"
	"strings"
	"testing"
)

// innerPing is an IPv4 ICMP echo request 203.0.113.9 → 10.1.0.5 with valid
// checksums: what a correspondent sends to a mobile node's home address.
func innerPing() []byte {
	be := binary.BigEndian
	p := make([]byte, 28)
	p[0], p[8], p[9] = 0x45, 63, 1
	be.PutUint16(p[2:], 28)
	copy(p[12:], []byte{203, 0, 113, 9, 10, 1, 0, 5})
	be.PutUint16(p[10:], ^sum16(p[:20]))
	p[20] = 8 // echo request
	be.PutUint16(p[24:], 0x1234)
	be.PutUint16(p[26:], 1)
	be.PutUint16(p[22:], ^sum16(p[20:]))
	return p
}

func sum16(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// TestTsharkUDPTunnel checks the RFC 3519 goldens against Wireshark's
// dissector: the request and reply extensions' fields, and a tunnel data
// message whose inner packet it must find after our 4-byte header.
func TestTsharkUDPTunnel(t *testing.T) {
	tshark := needTshark(t)
	data, _ := TunnelHeader{NextHeader: NextIPv4}.AppendBinary(nil)
	data = append(data, innerPing()...)
	file := writePcap(t, unhex(t, goldenUDPTunnelRequestHex), unhex(t, goldenUDPTunnelReplyHex), data)
	fields := []string{"mip.type", "mip.ext.type", "mip.ext.utrq.subtype", "mip.ext.utrq.f", "mip.ext.utrq.r",
		"mip.ext.utrq.encaptype", "mip.ext.utrp.code", "mip.ext.utrp.f", "mip.ext.utrp.keepalive",
		"mip.auth.spi", "mip.nattt.nexthdr", "ip.src", "icmp.type", "_ws.malformed", "_ws.expert"}
	lines := tsharkFields(t, tshark, file, fields)
	want := []string{
		// type exts sub f r encap code f keepalive spi nexthdr ip.src icmp malformed expert
		"1|131,144,32|0|1|0|4||||0x00000100||192.0.2.10|||",
		"3|131,44,32|||||0|1|110|0x00000100||192.0.2.10|||",
		"4||||||||||4|192.0.2.10,203.0.113.9|8||",
	}
	if len(lines) != len(want) {
		t.Fatalf("tshark printed %d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i, w := range want {
		got := lines[i]
		if got != w {
			t.Errorf("packet %d:\n got %s\nwant %s", i+1, got, w)
		}
	}
}
