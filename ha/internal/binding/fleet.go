package binding

// A fleet of mobile routers may register with one shared, dummy home
// address (DMNR deployments do): the home address then does not identify
// the router, its NAI does. Such a binding carries Key = FleetKey(NAI)
// beside its home address, and the table indexes it by both; a binding of
// an address that is not shared has Key 0 and is indexed as before.
//
// The key is a hash, so two NAIs could share one: 64 bits make that
// unlikely beyond any fleet (below 1e-9 for 100,000 routers on one
// address), and the caller, which knows the NAI the binding was written
// with (Source.NAI), refuses a router whose key is held under another NAI
// rather than letting it take over that binding.

// FleetKey is the key of the binding of a router with NAI nai on a shared
// home address: FNV-1a (64 bits) of the NAI's bytes as they are, never 0.
// Every member of a group computes the same key from the same NAI. It
// allocates nothing.
func FleetKey(nai []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range nai {
		h ^= uint64(c)
		h *= 1099511628211
	}
	if h == 0 {
		h = 1
	}
	return h
}

// PutNAI is Put for a binding that may be a fleet router's: when e.Key is
// not 0, nai (its NAI, at most NAIMax bytes) is kept in the entry's Source,
// where the group protocol reads it to name the binding to the other
// members. It allocates nothing.
func (t *Table) PutNAI(e Entry, nai []byte) (*Entry, error) {
	p, err := t.Put(e)
	if err == nil && e.Key != 0 {
		t.SourceOf(p).SetNAI(nai)
	}
	return p, err
}

// TombstoneNAI is TombstoneKey that keeps nai in the tombstone's Source
// when key is not 0 (see PutNAI): a de-registration is named by its NAI
// too, so that the other members withdraw that router's binding only.
func (t *Table) TombstoneNAI(home uint32, key uint64, nai []byte, id uint64, origin uint32, purgeAt int64) *Entry {
	p := t.TombstoneKey(home, key, id, origin, purgeAt)
	if p != nil && key != 0 {
		t.SourceOf(p).SetNAI(nai)
	}
	return p
}

// NAIOf is the NAI kept for a fleet router's binding e (PutNAI), nil for
// any other binding. The slice aliases the table.
func (t *Table) NAIOf(e *Entry) []byte {
	if e == nil || e.Key == 0 {
		return nil
	}
	if s := t.SourceOf(e); s != nil {
		return s.NAI()
	}
	return nil
}
