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
	for name, p := range map[string][]insn{
		"encap": utEncapProgram(3, 4, 0), "decap": utDecapProgram(3, 4, 0, 14), "decap, link unknown": utDecapProgram(3, 4, 0, -1),
		"encap+mss": utEncapProgram(3, 4, 1428), "decap+mss": utDecapProgram(3, 4, 1428, 14),
	} {
		code, err := assemble(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: %d instructions", name, len(code)/8)
	}
}

// A dumped "encap bpf" route parses: its LWT_BPF_* attributes share
// numbers with LWTUNNEL_IP_* and must not be read as an IP encap.
func TestParseRouteUDPTun(t *testing.T) {
	home := netip.MustParseAddr("10.1.0.5")
	r, err := parseRoute(appendRouteUDPTun(nil, home, 3, 1024, 77, 9, 1500))
	if err != nil {
		t.Fatal(err)
	}
	if r.Dst != home || r.Oif != 3 || r.Metric != 1024 || r.Protocol != 77 || r.EncapType != lwtunnelBPF || r.EncDst.IsValid() {
		t.Fatalf("%+v", r)
	}
}
