package binding

import "unsafe"

// NAIMax bounds the NAI a Source keeps, so that a Source is one 64-byte
// cache line; longer NAIs are kept truncated.
const NAIMax = 56

// Source is where the registration that last wrote an entry came from, for
// the console: the request's source address and port and the NAI it
// carried. It lives beside the entry (the entry itself stays one cache
// line), is cleared by every Put, and is filled by the member that accepted
// the registration; a member that learnt the entry from a peer leaves it
// zero.
type Source struct {
	Addr   uint32
	Port   uint16
	naiLen uint8
	nai    [NAIMax]byte
}

// SetNAI stores the first NAIMax bytes of nai; it allocates nothing.
func (s *Source) SetNAI(nai []byte) { s.naiLen = uint8(copy(s.nai[:], nai)) }

// NAI is the stored NAI; the slice aliases s.
func (s *Source) NAI() []byte { return s.nai[:s.naiLen] }

// SourceOf returns the Source beside e, which must be a pointer Get, Put,
// Tombstone or Range of t returned (valid as long as e is); nil otherwise.
func (t *Table) SourceOf(e *Entry) *Source {
	if e == nil || len(t.slab) == 0 {
		return nil
	}
	off := uintptr(unsafe.Pointer(e)) - uintptr(unsafe.Pointer(&t.slab[0]))
	i := off / unsafe.Sizeof(Entry{})
	if off%unsafe.Sizeof(Entry{}) != 0 || i == 0 || i >= uintptr(len(t.slab)) {
		return nil
	}
	return &t.src[i]
}
