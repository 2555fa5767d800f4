package agent

import (
	"net/netip"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/datapath"
)

// natDatapathConfig asks the kernel datapath for the RFC 3519 UDP tunnel
// when [nat] offers it: the eBPF programs and the uplink's filter. Tunnel
// data leaves from dc.Local (the virtual address with one), so that after a
// failover the NAT still accepts the new active member's; the uplink is
// nat.uplink_interface; the tunnel MTU the uplink's less 32, no MSS clamp
// (the datapath's defaults).
func natDatapathConfig(cfg *config.Config, dc *datapath.Config) {
	dc.UDPTunnel = cfg.NAT.UDPTunnel
	dc.UplinkIfname = cfg.NAT.Uplink
}

// natBinding makes b a UDP-tunnelled binding when e is one: tunnel data to
// the NAT mapping its registration came from. Replicated entries carry the
// same fields, so a member taking over programs the same mapping.
func natBinding(e *binding.Entry, b *datapath.Binding) {
	switch e.Encap {
	case binding.EncapUDP:
		b.Encap = datapath.UDP
		b.NAT = netip.AddrPortFrom(binding.U32Addr(e.NATAddr), e.NATPort)
	case binding.EncapGRE:
		b.Encap = datapath.GRE
	case binding.EncapIPIP:
		b.Encap = datapath.IPIP
	}
}
