package binding

import "net/netip"

// MaxPrefixes is the most networks one binding carries: what deployed home
// agents accept per mobile router (Cisco StarOS: 8; RFC 5177 sets no
// limit). The storage is inline in Entry (8 × (4+1) bytes), so the table
// stays preallocated and a registration with prefixes allocates nothing.
const MaxPrefixes = 8

// Encap is the tunnel encapsulation chosen for a binding.
type Encap uint8

// Encapsulations. The zero value means "not recorded": the tunnel is the
// one the registration's flags ask for (GRE when G is set, else IP in IP),
// which is every binding written before NAT traversal existed.
const (
	EncapDefault Encap = iota
	EncapIPIP          // IP in IP (RFC 2003) to CareOf
	EncapGRE           // GRE (RFC 2784) to CareOf
	// EncapUDP: RFC 3519 UDP tunnelling to NATAddr:NATPort, from the home
	// agent's port 434; what follows the tunnel data header is as Flags say
	// (GRE when G is set, else the inner IPv4 packet).
	EncapUDP
	encapMax = EncapUDP
)

// Valid reports whether x is one of the defined encapsulations.
func (x Encap) Valid() bool { return x <= encapMax }

func (x Encap) String() string {
	switch x {
	case EncapDefault:
		return "default"
	case EncapIPIP:
		return "ipip"
	case EncapGRE:
		return "gre"
	case EncapUDP:
		return "udp"
	}
	return "unknown"
}

// NumPrefixes is the number of networks the binding carries.
func (e *Entry) NumPrefixes() int { return int(e.nets) }

// Prefix is network i (0 <= i < NumPrefixes), masked.
func (e *Entry) Prefix(i int) netip.Prefix {
	return netip.PrefixFrom(U32Addr(e.netAddr[i]), int(e.netBits[i]))
}

// PrefixU32 is network i as the address (IPv4 as uint32) and length the
// wire carries.
func (e *Entry) PrefixU32(i int) (addr uint32, bits uint8) { return e.netAddr[i], e.netBits[i] }

// AddPrefix appends p, host bits cleared. It reports false, changing
// nothing, when p is not an IPv4 prefix or the binding already carries
// MaxPrefixes. It does not look for duplicates: the registration layer
// decides what a router may claim. It allocates nothing.
func (e *Entry) AddPrefix(p netip.Prefix) bool {
	a := p.Addr().Unmap()
	if !p.IsValid() || !a.Is4() || p.Bits() > 32 {
		return false
	}
	return e.AddPrefixU32(AddrU32(a), uint8(p.Bits()))
}

// AddPrefixU32 is AddPrefix for an address as uint32 and a length; false
// also when bits > 32.
func (e *Entry) AddPrefixU32(addr uint32, bits uint8) bool {
	if bits > 32 || e.nets >= MaxPrefixes {
		return false
	}
	if bits < 32 {
		addr &^= ^uint32(0) >> bits
	}
	e.netAddr[e.nets], e.netBits[e.nets] = addr, bits
	e.nets++
	return true
}

// ClearPrefixes removes every network.
func (e *Entry) ClearPrefixes() {
	e.nets, e.netAddr, e.netBits = 0, [MaxPrefixes]uint32{}, [MaxPrefixes]uint8{}
}
