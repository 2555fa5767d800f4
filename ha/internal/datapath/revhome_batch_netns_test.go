package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRevHomeBatches: the home map's writes of an Apply go in one bpf(2)
// call per homeBatchLen pairs (one call per pair before), in order (a home
// given twice keeps its last care-of); a full map refuses exactly the pairs
// beyond its room, each with "map full"; a kernel without the batch
// command gets the same map one call at a time.
func TestRevHomeBatches(t *testing.T) {
	requireRoot(t)
	for _, oneByOne := range []bool{false, true} {
		t.Run(fmt.Sprint("oneByOne=", oneByOne), func(t *testing.T) {
			f, err := newRevFilter(homeBatchLen) // room for one batch
			if err != nil {
				t.Fatal(err)
			}
			defer f.close()
			f.hb.init()
			f.hb.off = oneByOne
			bs := bindings(homeBatchLen, 0)
			// 64 bindings (a UDP batch), the last one the first's home again
			// with another care-of.
			batch := append(slices.Clone(bs[:63]), Binding{Home: bs[0].Home, CareOf: netip.MustParseAddr("203.0.113.9")})
			f.putHomes(len(batch), func(i int) (netip.Addr, netip.Addr, bool) { return batch[i].Home, batch[i].CareOf, true },
				func(i int, err error) { t.Fatalf("pair %d: %v", i, err) })
			if want := map[bool]uint64{false: 1, true: 64}[oneByOne]; f.hb.calls != want {
				t.Errorf("64 pairs written in %d bpf calls, want %d", f.hb.calls, want)
			}
			have, err := f.rd.readAll(f.homes)
			if err != nil {
				t.Fatal(err)
			}
			var v [4]byte
			careOfValue(&v, batch[63].CareOf)
			if len(have) != 63 || !slices.ContainsFunc(have, func(e revEntry) bool { return e.home == bs[0].Home.As4() && e.careOf == v }) {
				t.Fatalf("map holds %d pairs (want 63), the repeated home's last care-of among them: %v", len(have),
					slices.ContainsFunc(have, func(e revEntry) bool { return e.home == bs[0].Home.As4() && e.careOf == v }))
			}

			// Past the map's room: every pair beyond it refused, as full.
			more := bindings(homeBatchLen+100, 1)
			var refused []int
			f.putHomes(len(more), func(i int) (netip.Addr, netip.Addr, bool) { return more[i].Home, more[i].CareOf, i%3 != 1 },
				func(i int, err error) {
					if !errors.Is(err, unix.E2BIG) || !strings.Contains(err.Error(), "full") {
						t.Fatalf("pair %d: %v, want the map full", i, err)
					}
					refused = append(refused, i)
				})
			// 63 homes already in (overwritten, no room taken), then room
			// for homeBatchLen-63 new ones.
			var wantRefused []int
			room := homeBatchLen - 63
			for i := range more {
				if i%3 == 1 {
					continue
				}
				if i < 63 {
					continue
				}
				if room > 0 {
					room--
				} else {
					wantRefused = append(wantRefused, i)
				}
			}
			if !slices.Equal(refused, wantRefused) {
				t.Fatalf("refused %d pairs %v…, want %d %v…", len(refused), refused[:min(5, len(refused))], len(wantRefused), wantRefused[:min(5, len(wantRefused))])
			}
			if have, err := f.rd.readAll(f.homes); err != nil || len(have) != homeBatchLen {
				t.Fatalf("map holds %d pairs, want %d (err %v)", len(have), homeBatchLen, err)
			}
		})
	}
}
