package agent

import (
	"net/netip"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/internal/datapath"
)

// natRow shows a UDP-tunnelled binding's encapsulation and NAT endpoint in
// `show bindings`.
func natRow(e *binding.Entry, row *console.Binding) {
	if e.Encap != binding.EncapUDP {
		return
	}
	row.Tunnel = "udp"
	row.NAT = netip.AddrPortFrom(binding.U32Addr(e.NATAddr), e.NATPort).String()
}

// natCounters are the UDP tunnel's kernel counters for `show stats`
// (docs/datapath.md "UDP tunnelling"), all zero without nat.udp_tunnel.
func natCounters(ds *datapath.Stats) []console.Counter {
	return []console.Counter{
		{Name: "udp tunnel encapsulated", Value: ds.UDPEncapsulated},
		{Name: "udp tunnel dropped out: no endpoint", Value: ds.UDPNoEndpoint},
		{Name: "udp tunnel dropped out: encapsulation failed", Value: ds.UDPEncapFailed},
		{Name: "udp tunnel decapsulated", Value: ds.UDPDecapsulated},
		{Name: "udp tunnel keepalives", Value: ds.UDPKeepalives},
		{Name: "udp tunnel dropped in: wrong NAT address", Value: ds.UDPWrongAddr},
		{Name: "udp tunnel dropped in: wrong NAT port", Value: ds.UDPWrongPort},
		{Name: "udp tunnel dropped in: unknown home", Value: ds.UDPUnknownHome},
		{Name: "udp tunnel dropped in: next header not IP", Value: ds.UDPNextHeader},
		{Name: "udp tunnel dropped in: decapsulation failed", Value: ds.UDPDecapFailed},
		{Name: "udp tunnel TCP MSS clamped", Value: ds.UDPMSSClamped},
	}
}
