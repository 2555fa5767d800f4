package hasync

import "github.com/hagent/hagent/ha/internal/binding"

// Record extensions (spec §4.1.1): what a binding carries beyond the 32
// fixed bytes, as type-length-value items after them, so that a receiver
// skips what it does not know and a binding that carries nothing more is
// encoded exactly as before.

// Record extension types. Each type's value layout never changes: a new
// layout gets a new type. A receiver skips a type it does not know unless
// its RecExtMust bit is set; then it does not store the record (it cannot
// know what it would lose) and refuses it like an unadmitted one.
const (
	RecExtEndpoint uint8 = 1 // NAT endpoint: address(4), UDP port(2), encapsulation(1), reserved(1)
	RecExtPrefixes uint8 = 2 // mobile networks: 1..8 × (prefix length(1), address(4))
	// RecExtNAI names a fleet router's binding on a shared home address:
	// its NAI, 1..MaxRecNAI bytes. Must be understood (0x80 | 3): a member
	// that skipped it would take the record for the home address's only
	// binding and overwrite another router's.
	RecExtNAI  uint8 = RecExtMust | 3
	RecExtMust uint8 = 0x80
)

// Record extension sizes.
const (
	recExtHdr      = 2
	endpointLen    = 8
	prefixLen      = 5
	MaxRecPrefixes = 8 // binding.MaxPrefixes: the most one record carries
	MaxRecordExts  = 255 - 2 - 2 - RecordLen
	MaxRecordLen   = RecordLen + MaxRecordExts                                                                          // 251: a record fits one binding extension (length byte)
	MaxRecNAI      = binding.NAIMax                                                                                     // 56: what a binding keeps of a NAI
	MaxKnownRecord = RecordLen + recExtHdr + endpointLen + recExtHdr + prefixLen*MaxRecPrefixes + recExtHdr + MaxRecNAI // 142
	maxEncap       = 3                                                                                                  // binding.EncapUDP
	// ReplyRoom is the room for binding extensions in one Table Reply: a
	// chunk holds as many as fit (39 plain ones, at least 9 of the longest
	// known kind).
	ReplyRoom = MaxDatagram - HeaderLen - ReplyFixed - ICVLen // 1420
)

// ExtSize is the size of the binding extension that carries r.
func ExtSize(r *Record) int { return 4 + r.Len() }

// NumPrefixes is the number of networks r carries.
func (r *Record) NumPrefixes() int { return int(r.Nets) }

// hasEndpoint reports whether r carries a NAT endpoint.
func (r *Record) hasEndpoint() bool { return r.NATAddr != 0 || r.NATPort != 0 || r.Encap != 0 }

// Len is the encoded length of r: the fixed 32 bytes and its extensions.
func (r *Record) Len() int {
	n := RecordLen
	if r.hasEndpoint() {
		n += recExtHdr + endpointLen
	}
	if r.Nets > 0 {
		n += recExtHdr + prefixLen*int(min(r.Nets, MaxRecPrefixes))
	}
	if r.NAILen > 0 {
		n += recExtHdr + int(min(r.NAILen, MaxRecNAI))
	}
	return n
}

// appendExts appends r's extensions in ascending type order.
func (r *Record) appendExts(b []byte) []byte {
	if r.hasEndpoint() {
		b = append(b, RecExtEndpoint, endpointLen)
		b = be.AppendUint32(b, r.NATAddr)
		b = be.AppendUint16(b, r.NATPort)
		b = append(b, r.Encap, 0)
	}
	if n := min(r.Nets, MaxRecPrefixes); n > 0 {
		b = append(b, RecExtPrefixes, prefixLen*n)
		for i := range n {
			b = append(b, r.NetBits[i])
			b = be.AppendUint32(b, r.NetAddr[i])
		}
	}
	if n := min(r.NAILen, MaxRecNAI); n > 0 {
		b = append(b, RecExtNAI, n)
		b = append(b, r.NAI[:n]...)
	}
	return b
}

// parseExts parses the extensions after a record's fixed part. Types must
// ascend (each at most once); unknown ones are skipped, and an unknown one
// with RecExtMust is noted in r.Unknown. Every field is checked: an
// endpoint with an undefined encapsulation, or a UDP one without address
// and port, a prefix longer than 32 bits or with host bits set, is
// malformed.
func (r *Record) parseExts(b []byte) error {
	r.NATAddr, r.NATPort, r.Encap, r.Nets, r.Unknown, r.NAILen, r.Key = 0, 0, 0, 0, 0, 0, 0
	r.NetAddr, r.NetBits = [MaxRecPrefixes]uint32{}, [MaxRecPrefixes]uint8{}
	if len(b) > MaxRecordExts {
		return ErrLength
	}
	last := -1
	for len(b) > 0 {
		if len(b) < recExtHdr || len(b) < recExtHdr+int(b[1]) {
			return ErrMalformed
		}
		typ, v := b[0], b[recExtHdr:recExtHdr+int(b[1])]
		b = b[recExtHdr+len(v):]
		if int(typ) <= last {
			return ErrMalformed
		}
		last = int(typ)
		switch typ {
		case RecExtEndpoint:
			if len(v) != endpointLen {
				return ErrMalformed
			}
			r.NATAddr, r.NATPort, r.Encap = be.Uint32(v), be.Uint16(v[4:]), v[6]
			if r.Encap > maxEncap || (r.Encap == maxEncap && (r.NATAddr == 0 || r.NATPort == 0)) || !r.hasEndpoint() {
				return ErrMalformed
			}
		case RecExtPrefixes:
			n := len(v) / prefixLen
			if len(v)%prefixLen != 0 || n == 0 || n > MaxRecPrefixes {
				return ErrMalformed
			}
			for i := range n {
				bits, addr := v[prefixLen*i], be.Uint32(v[prefixLen*i+1:])
				if bits > 32 || (bits < 32 && addr&(^uint32(0)>>bits) != 0) {
					return ErrMalformed
				}
				r.NetBits[i], r.NetAddr[i] = bits, addr
			}
			r.Nets = uint8(n)
		case RecExtNAI:
			if len(v) == 0 || len(v) > MaxRecNAI {
				return ErrMalformed
			}
			r.NAILen = uint8(copy(r.NAI[:], v))
			r.Key = binding.FleetKey(v)
		default:
			if typ&RecExtMust != 0 && r.Unknown == 0 {
				r.Unknown = typ
			}
		}
	}
	return nil
}
