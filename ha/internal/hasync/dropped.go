package hasync

import (
	"net/netip"

	"github.com/hagent/hagent/ha/internal/binding"
)

// Dropped is what a peer's write took away of a live binding's mobile
// networks (RFC 5177): the networks the replaced entry carried that the
// new one does not. By the time the caller hears of the write the table
// holds only the new networks, so the member that routes them could not
// tell which routes to remove; the write says it (ActBinding). Fixed and
// compact, because it travels in every Action.
type Dropped struct {
	N    uint8
	Bits [binding.MaxPrefixes]uint8
	Addr [binding.MaxPrefixes]uint32
}

// Prefix is network i of d.
func (d *Dropped) Prefix(i int) netip.Prefix {
	return netip.PrefixFrom(binding.U32Addr(d.Addr[i]), int(d.Bits[i]))
}

// set makes d old's networks that cur does not carry.
func (d *Dropped) set(old, cur *binding.Entry) {
	d.N = 0
	for i := range old.NumPrefixes() {
		a, b := old.PrefixU32(i)
		if !carries(cur, a, b) {
			d.Addr[d.N], d.Bits[d.N] = a, b
			d.N++
		}
	}
}

func carries(e *binding.Entry, addr uint32, bits uint8) bool {
	for i := range e.NumPrefixes() {
		if a, b := e.PrefixU32(i); a == addr && b == bits {
			return true
		}
	}
	return false
}
