package datapath

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
)

// The periodic check of the mobile networks' routes. The kernel's routes
// are read with the home addresses' (ScanKernel, off the owner loop: the
// same dump, the routes of our protocol in the prefix metric range), and
// converged with them, a slice of the table at a time (ConvergePrefixes),
// then the routes no binding wants go (FinishPrefixes), before
// ConvergeFinish. What ApplyPrefixes changes meanwhile is left alone, as
// Apply's homes are: its state in the scan may predate the change. The
// reverse check's trie follows every route repaired here through
// ApplyPrefixes; a trie entry whose route is fine is not read (takeover
// rewrites the trie whole).

// PrefixChecker is the periodic check's prefix side; the value Open returns
// implements it (assert dp.(PrefixChecker)).
type PrefixChecker interface {
	// ConvergePrefixes repairs the routes of nets (one slice of the wanted
	// networks, after ConvergeSome of the same slice): missing or different
	// ones are (re)installed.
	ConvergePrefixes(s *Scan, nets []MobileNet) error
	// FinishPrefixes removes the routes of ours no slice wanted, and
	// returns what the check repaired. Call it before ConvergeFinish.
	FinishPrefixes(s *Scan) (added, removed int, err error)
}

var _ PrefixChecker = (*kernel)(nil)

// kpRoute is one of our prefix routes as the check's dump shows it: 32
// bytes (a pRoute is 88), for up to some 400,000 of them.
type kpRoute struct {
	key            pfx
	metric, oif    uint32
	encDst, encSrc [4]byte
	ttl            uint8
	df             bool
}

func kpRouteOf(data []byte, r *route) kpRoute {
	dst := netip.IPv4Unspecified()
	if bits := int(data[1]); bits == 32 {
		dst = r.Dst
	} else if v, ok := rtaDst(data); ok {
		dst = v
	}
	kp := kpRoute{key: pfxOf(netip.PrefixFrom(dst, int(data[1]))), metric: r.Metric, oif: r.Oif, ttl: r.TTL, df: r.DF}
	if r.EncDst.Is4() {
		kp.encDst = r.EncDst.As4()
	}
	if r.EncSrc.Is4() {
		kp.encSrc = r.EncSrc.As4()
	}
	return kp
}

func (r *kpRoute) prefix() netip.Prefix {
	a := uint32(r.key >> 8)
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), int(r.key&0xff))
}

func sortKP(kp []kpRoute) {
	slices.SortFunc(kp, func(a, b kpRoute) int {
		if c := cmp.Compare(a.key, b.key); c != 0 {
			return c
		}
		return cmp.Compare(a.metric, b.metric)
	})
}

// touchedPrefixes records the networks ApplyPrefixes changes while a scan
// reads (bounded like the homes: beyond, the scan is stale).
func (k *kernel) touchedPrefixes(adds []MobileNet, dels []netip.Prefix) {
	if !k.scanning {
		return
	}
	for i := range len(adds) + len(dels) {
		if len(k.pdirty) >= maxDirty {
			k.dirtyOver = true
			return
		}
		if i < len(adds) {
			k.pdirty[pfxOf(adds[i].Prefix)] = struct{}{}
		} else {
			k.pdirty[pfxOf(dels[i-len(adds)])] = struct{}{}
		}
	}
}

func (k *kernel) pSkip(s *Scan, key pfx) bool {
	if !s.skipDirty || len(k.pdirty) == 0 {
		return false
	}
	_, ok := k.pdirty[key]
	return ok
}

func (k *kernel) ConvergePrefixes(s *Scan, nets []MobileNet) error {
	if err := k.scanValid(s); err != nil {
		return err
	}
	st := k.pfx()
	s.padds = s.padds[:0]
	for _, m := range nets {
		key := pfxOf(m.Prefix)
		if key == badPfx || !m.CareOf.Is4() || !k.Supports(m.Encap) || k.pSkip(s, key) {
			continue
		}
		metric, known := st.metrics[key]
		// the routes to this prefix (more than one: ours at the metric the
		// state knows, the others extras that FinishPrefixes removes)
		i, _ := slices.BinarySearchFunc(s.kp, key, func(r kpRoute, k pfx) int { return cmp.Compare(r.key, k) })
		j := -1
		for x := i; x < len(s.kp) && s.kp[x].key == key; x++ {
			if known && s.kp[x].metric == metric || !known && j < 0 {
				j = x
			}
		}
		if j >= 0 {
			s.usedP[j] = true
			r := &s.kp[j]
			if !known {
				// a route left by an earlier run: adopt its metric
				st.adopt(key, r.metric)
				metric = r.metric
			}
			if k.samePrefixRoute(r, &m, metric) {
				continue
			}
		}
		s.padds = append(s.padds, m)
	}
	if len(s.padds) > 0 {
		errs := k.ApplyPrefixes(s.padds, nil)
		for i := range s.padds {
			if errs != nil && errs[i] != nil {
				s.pbad = append(s.pbad, errs[i])
				continue
			}
			s.pAdded++
		}
	}
	return nil
}

// samePrefixRoute reports whether the dumped route is what m needs, at
// the metric the state holds for it.
func (k *kernel) samePrefixRoute(r *kpRoute, m *MobileNet, metric uint32) bool {
	src := m.Src
	if !src.IsValid() {
		src = k.cfg.Local
	}
	var encSrc [4]byte
	if src.Is4() && !src.IsUnspecified() {
		encSrc = src.As4()
	}
	return r.metric == metric && r.oif == k.tun[m.Encap] && r.encDst == m.CareOf.As4() &&
		r.encSrc == encSrc && r.ttl == k.cfg.TTL && r.df == k.cfg.TunnelDF
}

func (k *kernel) FinishPrefixes(s *Scan) (added, removed int, err error) {
	if err := k.scanValid(s); err != nil {
		return 0, 0, err
	}
	st := k.pfx()
	var ours []netip.Prefix // the state's own: route, trie entry and metric go
	var extra []pRoute      // unknown to the state, or a second route: by its metric
	for i := range s.kp {
		r := &s.kp[i]
		if s.usedP[i] || k.pSkip(s, r.key) {
			continue
		}
		if m, ok := st.metrics[r.key]; ok && m == r.metric {
			ours = append(ours, r.prefix())
		} else {
			extra = append(extra, pRoute{prefix: r.prefix(), metric: r.metric})
		}
	}
	if len(ours) > 0 {
		errs := k.ApplyPrefixes(nil, ours)
		for i := range ours {
			if errs != nil && errs[i] != nil {
				s.pbad = append(s.pbad, errs[i])
				continue
			}
			s.pRemoved++
		}
	}
	if len(extra) > 0 {
		if e := k.delPrefixRoutes(extra); e != nil {
			s.pbad = append(s.pbad, e)
		} else {
			s.pRemoved += len(extra)
		}
	}
	if len(s.pbad) > 0 {
		return s.pAdded, s.pRemoved, fmt.Errorf("datapath: reconciling mobile network routes: %d failed, first: %w", len(s.pbad), s.pbad[0])
	}
	return s.pAdded, s.pRemoved, nil
}
