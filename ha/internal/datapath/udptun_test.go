package datapath

import (
	"bytes"
	"net/netip"
	"testing"
)

// The programs copy the endpoint into headers and compare it with packets
// byte for byte: every field must be in wire order whatever the host's.
func TestEndpointValueWireOrder(t *testing.T) {
	var v [utValueLen]byte
	endpointValue(&v, Endpoint{NAT: netip.MustParseAddrPort("192.0.2.50:40000"), Local: netip.MustParseAddr("198.51.100.1")})
	want := []byte{192, 0, 2, 50, 198, 51, 100, 1, 0x9c, 0x40, 0, 0}
	if !bytes.Equal(v[:], want) {
		t.Fatalf("value % x, want % x", v, want)
	}
}

// Both programs assemble (labels resolve) and stay small enough to read.
func TestUDPTunAssemble(t *testing.T) {
	for name, p := range map[string][]insn{"encap": utEncapProgram(3, 4), "decap": utDecapProgram(3, 4)} {
		code, err := assemble(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: %d instructions", name, len(code)/8)
	}
}
