package binding

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"
	"unsafe"
)

const sec = int64(time.Second)

// t0 is an arbitrary monotonic "boot + 1 h" so that times are not near 0.
const t0 = 3600 * sec

func live(home uint32, reg int64, lifetime int64) Entry {
	return Entry{Home: home, CareOf: home + 1, HomeAgent: 0x0a000001, Origin: 7, ID: uint64(reg), Node: int32(home & 0xff),
		Granted: uint16(lifetime), Flags: 0x10, Registered: reg, Expires: reg + lifetime*sec}
}

func mustPut(t *testing.T, tb *Table, e Entry) *Entry {
	t.Helper()
	p, err := tb.Put(e)
	if err != nil {
		t.Fatalf("Put(%#x): %v", e.Home, err)
	}
	return p
}

func checkCounts(t *testing.T, tb *Table, live, tombs int) {
	t.Helper()
	if tb.Len() != live || tb.Tombs() != tombs {
		t.Fatalf("Len/Tombs = %d/%d, want %d/%d", tb.Len(), tb.Tombs(), live, tombs)
	}
}

func TestPutGetRenewDelete(t *testing.T) {
	tb := New(4, 2)
	if tb.Cap() != 4 || tb.TombCap() != 2 {
		t.Fatalf("Cap/TombCap = %d/%d", tb.Cap(), tb.TombCap())
	}
	if tb.Get(1) != nil {
		t.Fatal("Get on empty table")
	}
	if _, ok := tb.NextDeadline(); ok {
		t.Fatal("NextDeadline on empty table")
	}
	e := live(0x0a000a01, t0, 60)
	p := mustPut(t, tb, e)
	if *p != *tb.Get(e.Home) || p.Home != e.Home || p.CareOf != e.CareOf || p.Tombstone() {
		t.Fatalf("Get after Put = %+v", p)
	}
	if got := p.Remaining(t0 + 10*sec); got != 50*time.Second {
		t.Fatalf("Remaining = %v", got)
	}
	if got := p.Remaining(t0 + 60*sec); got != 0 {
		t.Fatalf("Remaining at expiry = %v", got)
	}
	e2 := live(e.Home, t0+30*sec, 120)
	e2.CareOf = 99
	p = mustPut(t, tb, e2)
	if p.CareOf != 99 || p.Expires != t0+150*sec {
		t.Fatalf("renewal not applied: %+v", p)
	}
	if d, _ := tb.NextDeadline(); d != t0+150*sec {
		t.Fatalf("NextDeadline after renewal = %d", d)
	}
	checkCounts(t, tb, 1, 0)
	if !tb.Delete(e.Home) || tb.Delete(e.Home) || tb.Get(e.Home) != nil {
		t.Fatal("Delete")
	}
	checkCounts(t, tb, 0, 0)
	st := tb.Stats()
	if st.Inserts != 1 || st.Renewals != 1 || st.Deletes != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFullNothingEvicted(t *testing.T) {
	tb := New(3, 1)
	for i := uint32(1); i <= 3; i++ {
		mustPut(t, tb, live(i, t0, int64(i)))
	}
	_, err := tb.Put(live(4, t0, 1000))
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Put into full table: %v", err)
	}
	for i := uint32(1); i <= 3; i++ {
		if tb.Get(i) == nil {
			t.Fatalf("%d evicted", i)
		}
	}
	// Renewal of an existing binding still works in a full table.
	mustPut(t, tb, live(2, t0+sec, 50))
	// A tombstone does not consume live capacity, but it cannot become
	// live while the table is full.
	tb.Tombstone(9, 1, 1, t0+100*sec)
	if _, err := tb.Put(live(9, t0, 10)); !errors.Is(err, ErrFull) {
		t.Fatalf("tomb → live in full table: %v", err)
	}
	if p := tb.Get(9); p == nil || !p.Tombstone() {
		t.Fatal("tombstone lost by a refused Put")
	}
	checkCounts(t, tb, 3, 1)
	if st := tb.Stats(); st.Full != 2 {
		t.Fatalf("Full = %d", st.Full)
	}
	// Free one: room again.
	tb.Delete(1)
	mustPut(t, tb, live(4, t0, 10))
	checkCounts(t, tb, 3, 1)
}

func TestTombstoneTransitions(t *testing.T) {
	tb := New(2, 2)
	p := mustPut(t, tb, live(5, t0, 100))
	// live → tomb
	q := tb.Tombstone(5, 42, 3, t0+20*sec)
	if q == nil || !q.Tombstone() || q.ID != 42 || q.Origin != 3 || q.Expires != t0+20*sec || q.Granted != 0 || q.CareOf != p.CareOf {
		t.Fatalf("live → tomb: %+v", q)
	}
	checkCounts(t, tb, 0, 1)
	// tomb refreshed
	q = tb.Tombstone(5, 43, 4, t0+30*sec)
	if q.ID != 43 || q.Expires != t0+30*sec {
		t.Fatalf("tomb refresh: %+v", q)
	}
	if d, _ := tb.NextDeadline(); d != t0+30*sec {
		t.Fatalf("NextDeadline = %d", d)
	}
	checkCounts(t, tb, 0, 1)
	// tomb → live
	p = mustPut(t, tb, live(5, t0+5*sec, 10))
	if p.Tombstone() || p.ID != uint64(t0+5*sec) {
		t.Fatalf("tomb → live: %+v", p)
	}
	checkCounts(t, tb, 1, 0)
	if d, _ := tb.NextDeadline(); d != t0+15*sec {
		t.Fatalf("NextDeadline = %d", d)
	}
	// a tombstone for an address never seen (claims 38-39)
	q = tb.Tombstone(6, 1, 2, t0+50*sec)
	if q.Node != -1 || q.Home != 6 || !q.Tombstone() {
		t.Fatalf("new tomb: %+v", q)
	}
	checkCounts(t, tb, 1, 1)
}

func TestFullTableFoldsNearest(t *testing.T) {
	tb := New(10, 3) // 13 slots
	tb.Tombstone(1, 1, 1, t0+30*sec)
	tb.Tombstone(2, 5, 1, t0+10*sec+5) // nearest
	tb.Tombstone(3, 1, 1, t0+10*sec+6)
	for i := uint32(100); i < 110; i++ {
		mustPut(t, tb, live(i, t0, 100)) // tombstones never cost live room
	}
	// Every slot taken: a new home's tombstone folds the nearest one.
	tb.Tombstone(4, 1, 1, t0+60*sec)
	if tb.Get(2) != nil || tb.Get(1) == nil || tb.Get(3) == nil || tb.Get(4) == nil {
		t.Fatal("folded the wrong tombstone")
	}
	if !tb.Covered(2, 5, t0) || !tb.Covered(2, 4, t0) || tb.Covered(2, 6, t0) {
		t.Fatal("the folded tombstone's floor does not refuse exactly the writes at or below it")
	}
	if tb.Covered(2, 5, t0+10*sec+5) {
		t.Fatal("floor outlived its tombstone's purge time")
	}
	// live → tomb costs nothing, even with every slot taken
	tb.Tombstone(100, 9, 9, t0+90*sec)
	if tb.Get(3) == nil || !tb.Get(100).Tombstone() {
		t.Fatal("live → tomb with every slot taken")
	}
	checkCounts(t, tb, 9, 4)
	// A new live binding below capacity folds the nearest tombstone (3).
	mustPut(t, tb, live(200, t0, 100))
	checkCounts(t, tb, 10, 3)
	if tb.Get(3) != nil || !tb.Covered(3, 1, t0) {
		t.Fatal("Put did not fold the nearest tombstone")
	}
	// A new tombstone nearer its purge than any in the table is folded
	// itself.
	if p := tb.Tombstone(5, 7, 1, t0+sec); p != nil {
		t.Fatalf("nearest new tombstone stored: %+v", p)
	}
	if tb.Get(5) != nil || !tb.Covered(5, 7, t0) || tb.Covered(5, 8, t0) {
		t.Fatal("new tombstone not folded")
	}
	if st := tb.Stats(); st.TombEvicted != 3 {
		t.Fatalf("TombEvicted = %d, want 3", st.TombEvicted)
	}
	// An entry in the table is judged by its own version, never a floor.
	if tb.Covered(1, 0, t0) {
		t.Fatal("Covered answered for a held home")
	}
}

func TestTombCapZero(t *testing.T) {
	tb := New(2, 0)
	mustPut(t, tb, live(1, t0, 10))
	if tb.Tombstone(1, 1, 1, t0+sec) != nil || tb.Tombstone(2, 1, 1, t0+sec) != nil {
		t.Fatal("tombstone created with tombCapacity 0")
	}
	checkCounts(t, tb, 0, 0)
}

func TestExpireOrder(t *testing.T) {
	tb := New(100, 10)
	tb.Expire(t0, nil)
	lifetimes := []int64{5, 1, 3, 3, 2, 60, 65535}
	for i, l := range lifetimes {
		mustPut(t, tb, live(uint32(i+1), t0, l))
	}
	tb.Tombstone(50, 1, 1, t0+4*sec)
	var got []uint32
	collect := func(e *Entry) {
		if tb.Get(e.Home) != e {
			t.Errorf("entry %d not in table during callback", e.Home)
		}
		got = append(got, e.Home)
	}
	want := [][]uint32{
		{},     // t0+0
		{2},    // +1
		{5},    // +2
		{3, 4}, // +3
		{50},   // +4 (tombstone purged)
		{1},    // +5
	}
	for s, w := range want {
		d, ok := tb.NextDeadline()
		if !ok {
			t.Fatal("no deadline")
		}
		got = got[:0]
		n := tb.Expire(t0+int64(s)*sec, collect)
		sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
		if n != len(w) || fmt.Sprint(got) != fmt.Sprint(w) {
			t.Fatalf("Expire(+%ds) = %d %v, want %v", s, n, got, w)
		}
		if len(w) > 0 && d != t0+int64(s)*sec {
			t.Fatalf("NextDeadline before +%ds = %d, want %d", s, d-t0, int64(s)*sec)
		}
	}
	// Nanosecond precision: not a nanosecond early.
	if n := tb.Expire(t0+60*sec-1, nil); n != 0 {
		t.Fatal("expired early")
	}
	if n := tb.Expire(t0+60*sec, nil); n != 1 {
		t.Fatal("not expired at deadline")
	}
	if d, _ := tb.NextDeadline(); d != t0+65535*sec {
		t.Fatalf("NextDeadline = %d", d)
	}
	if w, _ := tb.NextWake(); w < t0+65535*sec || w > t0+65537*sec || tb.Expire(w, nil) != 1 {
		t.Fatalf("NextWake = %d", w)
	}
	st := tb.Stats()
	if st.Expired != 7 || st.Purged != 1 || tb.Len() != 0 || tb.Tombs() != 0 {
		t.Fatalf("stats %+v len %d", st, tb.Len())
	}
}

// Lifetimes longer than one turn of the wheel stay in their slot until their turn.
func TestWheelWrap(t *testing.T) {
	for _, bits := range []uint{minWheelBits, liveWheelBits} {
		tb := newTable(10, 10, bits, bits)
		turn := (int64(1) << bits) << tickShift
		tb.Expire(t0, nil)
		mustPut(t, tb, Entry{Home: 1, Expires: t0 + 3*turn + 7*sec})
		mustPut(t, tb, Entry{Home: 2, Expires: t0 + 2*sec})
		tb.Tombstone(3, 1, 1, t0+turn+sec)
		if d, _ := tb.NextDeadline(); d != t0+2*sec {
			t.Fatalf("bits %d: NextDeadline %d", bits, d)
		}
		// Step through time in irregular strides; nothing may expire early.
		now := t0
		gone := map[uint32]int64{}
		for now < t0+4*turn {
			now += (turn / 5) + 12345
			tb.Expire(now, func(e *Entry) { gone[e.Home] = now; _ = e })
			for h, exp := range map[uint32]int64{1: t0 + 3*turn + 7*sec, 2: t0 + 2*sec, 3: t0 + turn + sec} {
				if at, ok := gone[h]; ok && at < exp {
					t.Fatalf("bits %d: %d expired at %d before %d", bits, h, at, exp)
				} else if !ok && now >= exp {
					t.Fatalf("bits %d: %d not expired at %d (due %d)", bits, h, now, exp)
				}
			}
		}
		// One Expire after a gap of several turns.
		tb.Expire(now, nil)
		mustPut(t, tb, Entry{Home: 4, Expires: now + 10*turn})
		if d, _ := tb.NextDeadline(); d != now+10*turn {
			t.Fatalf("bits %d: NextDeadline all wrapped %d", bits, d)
		}
		if tb.Expire(now+10*turn-1, nil) != 0 || tb.Expire(now+10*turn, nil) != 1 {
			t.Fatalf("bits %d: expiry after a long gap", bits)
		}
	}
}

// Renewals that always come before expiry: Expire never runs, yet the
// cursor follows the registrations and NextDeadline stays cheap.
func TestRenewOnlyCursorFollows(t *testing.T) {
	tb := newTable(100, 10, minWheelBits, minWheelBits)
	now := t0
	for i := uint32(0); i < 100; i++ {
		mustPut(t, tb, Entry{Home: i, Registered: now, Expires: now + int64(i+1)*sec})
	}
	turn := int64(64) << tickShift
	for step := 0; now < t0+10*turn; step++ {
		now += sec / 3
		d, _ := tb.NextDeadline()
		p := mustPut(t, tb, Entry{Home: uint32(step % 100), Registered: now, Expires: now + 30*sec})
		if d < now-31*sec {
			t.Fatalf("NextDeadline %d far behind now %d", d, now)
		}
		_ = p
	}
	if lag := now>>tickShift - tb.lw.cursor; lag > 64 {
		t.Fatalf("cursor lags %d ticks", lag)
	}
}

// A caller's clock that goes back, or entries already due when inserted.
func TestExpireOddTimes(t *testing.T) {
	tb := newTable(10, 10, minWheelBits, minWheelBits)
	tb.Expire(t0+100*sec, nil)
	mustPut(t, tb, Entry{Home: 1, Expires: t0})           // already due
	mustPut(t, tb, Entry{Home: 2, Expires: t0 + 50*sec})  // due, behind the cursor
	mustPut(t, tb, Entry{Home: 3, Expires: t0 + 200*sec}) // future
	if d, _ := tb.NextDeadline(); d != t0 {
		t.Fatalf("NextDeadline %d", d)
	}
	if n := tb.Expire(t0+10*sec, nil); n != 1 { // clock went back
		t.Fatalf("Expire back in time removed %d", n)
	}
	if n := tb.Expire(t0+100*sec, nil); n != 1 || tb.Get(2) != nil {
		t.Fatalf("Expire removed %d", n)
	}
	if n := tb.Expire(t0+199*sec, nil); n != 0 {
		t.Fatal("early")
	}
	if n := tb.Expire(t0+200*sec, nil); n != 1 {
		t.Fatal("late")
	}
}

func TestExpireCallbackMutationPanics(t *testing.T) {
	tb := New(4, 4)
	mustPut(t, tb, Entry{Home: 1, Expires: 10})
	mustPut(t, tb, Entry{Home: 2, Expires: 10})
	defer func() {
		if recover() == nil {
			t.Fatal("Delete inside Expire callback did not panic")
		}
	}()
	tb.Expire(20, func(e *Entry) { tb.Delete(3 - e.Home) })
}

func TestRange(t *testing.T) {
	tb := New(1000, 100)
	want := map[uint32]bool{}
	for i := uint32(0); i < 1000; i++ {
		mustPut(t, tb, live(i*7, t0, int64(i)))
		want[i*7] = true
	}
	for i := uint32(0); i < 1000; i += 3 {
		tb.Delete(i * 7)
		delete(want, i*7)
	}
	for i := uint32(5000); i < 5100; i++ {
		tb.Tombstone(i, 1, 1, t0+sec)
		want[i] = true
	}
	seen := map[uint32]int{}
	tb.Range(func(e *Entry) bool { seen[e.Home]++; return true })
	if len(seen) != len(want) {
		t.Fatalf("Range saw %d entries, want %d", len(seen), len(want))
	}
	for h, n := range seen {
		if n != 1 || !want[h] {
			t.Fatalf("Range saw %d %d times (wanted %v)", h, n, want[h])
		}
	}
	// Chunked: RangeFrom resumes where it stopped.
	clear(seen)
	pos, calls := 0, 0
	for {
		k := 0
		pos = tb.RangeFrom(pos, func(e *Entry) bool { seen[e.Home]++; k++; return k < 50 })
		calls++
		if pos == 0 {
			break
		}
	}
	if len(seen) != len(want) || calls < len(want)/50 {
		t.Fatalf("RangeFrom saw %d in %d calls", len(seen), calls)
	}
	// Delete during Range is safe.
	tb.Range(func(e *Entry) bool { tb.Delete(e.Home); return true })
	checkCounts(t, tb, 0, 0)
	// Early stop.
	mustPut(t, tb, live(1, t0, 1))
	mustPut(t, tb, live(2, t0, 1))
	n := 0
	tb.Range(func(*Entry) bool { n++; return false })
	if n != 1 {
		t.Fatalf("Range did not stop: %d", n)
	}
}

func TestClear(t *testing.T) {
	tb := New(10, 10)
	for i := uint32(1); i <= 10; i++ {
		mustPut(t, tb, live(i, t0, 10))
		tb.Tombstone(100+i, 1, 1, t0)
	}
	tb.Clear()
	checkCounts(t, tb, 0, 0)
	if _, ok := tb.NextDeadline(); ok || tb.Get(1) != nil {
		t.Fatal("Clear left something")
	}
	for i := uint32(1); i <= 10; i++ {
		mustPut(t, tb, live(i, t0, 10))
	}
	if tb.Expire(t0+10*sec, nil) != 10 {
		t.Fatal("expire after Clear")
	}
}

func TestNewPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New(0, 0) did not panic")
		}
	}()
	New(0, 0)
}

func TestAddrU32(t *testing.T) {
	a := netip.MustParseAddr("10.1.2.3")
	if u := AddrU32(a); u != 0x0a010203 || U32Addr(u) != a {
		t.Fatalf("AddrU32 = %#x", u)
	}
	if AddrU32(netip.MustParseAddr("::ffff:10.1.2.3")) != 0x0a010203 || AddrU32(netip.MustParseAddr("2001:db8::1")) != 0 || AddrU32(netip.Addr{}) != 0 {
		t.Fatal("AddrU32 non-IPv4")
	}
	if n := testing.AllocsPerRun(100, func() { _ = U32Addr(AddrU32(a)) }); n != 0 {
		t.Fatalf("allocs %v", n)
	}
}

// TestModel drives the table and a plain map with the same seeded random
// operations and compares them after every step.
func TestModel(t *testing.T) {
	type mEntry struct {
		tomb    bool
		expires int64
		id      uint64
	}
	for _, cfg := range []struct {
		cap, tomb int
		bits      uint
		folds     bool // more homes written than slots: tombstones are folded
	}{{40, 8, minWheelBits, false}, {40, 8, liveWheelBits, false}, {5, 0, minWheelBits, false}, {200, 50, 8, false}, {12, 4, minWheelBits, true}} {
		for seed := uint64(1); seed <= 4; seed++ {
			rng := rand.New(rand.NewPCG(seed, uint64(cfg.cap)))
			tb := newTable(cfg.cap, cfg.tomb, cfg.bits, cfg.bits)
			model := map[uint32]mEntry{}
			now := t0 + rng.Int64N(1000*sec)
			tb.Expire(now, nil)
			// folded: tombstones dropped for lack of room; Covered must
			// answer for them until their purge time.
			folded := map[uint32][]mEntry{}
			// foldNearest removes from the model the tombstone the table
			// folded to make room (the nearest purge time, any of equal
			// ones), or reports true when it is the new one, due at purge.
			foldNearest := func(seed uint64, step int, home uint32, purge int64) bool {
				var minAt int64 = 1 << 62
				for _, e := range model {
					if e.tomb && e.expires < minAt {
						minAt = e.expires
					}
				}
				if purge <= minAt {
					return true
				}
				evicted := 0
				for h, e := range model {
					if e.tomb && tb.Get(h) == nil && h != home {
						if e.expires != minAt {
							t.Fatalf("seed %d step %d: folded tomb %d purge %d, nearest %d", seed, step, h, e.expires, minAt)
						}
						delete(model, h)
						folded[h] = append(folded[h], e)
						evicted++
					}
				}
				if evicted != 1 {
					t.Fatalf("seed %d step %d: %d tombstones folded", seed, step, evicted)
				}
				return false
			}
			nLive := func() (l, tm int) {
				for _, e := range model {
					if e.tomb {
						tm++
					} else {
						l++
					}
				}
				return
			}
			for step := 0; step < 5000; step++ {
				home := uint32(rng.IntN(cfg.cap * 2))
				switch op := rng.IntN(10); {
				case op < 4: // Put
					life := rng.Int64N(300 * sec)
					if rng.IntN(20) == 0 {
						life = rng.Int64N(100000 * sec) // beyond a small wheel's turn
					}
					id := rng.Uint64()
					_, err := tb.Put(Entry{Home: home, ID: id, Registered: now, Expires: now + life})
					old, had := model[home]
					l, _ := nLive()
					switch {
					case had && !old.tomb:
						model[home] = mEntry{expires: now + life, id: id}
					case l >= cfg.cap:
						if !errors.Is(err, ErrFull) {
							t.Fatalf("seed %d step %d: Put into full table: %v", seed, step, err)
						}
						continue
					default:
						if !had && len(model) >= cfg.cap+cfg.tomb {
							// Every slot taken: the nearest tombstone is folded.
							foldNearest(seed, step, home, 1<<62)
						}
						model[home] = mEntry{expires: now + life, id: id}
					}
					if err != nil {
						t.Fatalf("seed %d step %d: Put: %v", seed, step, err)
					}
				case op < 6: // Tombstone
					purge := now + rng.Int64N(200*sec)
					id := rng.Uint64()
					p := tb.Tombstone(home, id, 1, purge)
					_, had := model[home]
					if cfg.tomb == 0 {
						delete(model, home)
						if p != nil {
							t.Fatal("tomb with tombCapacity 0")
						}
						break
					}
					if !had && len(model) >= cfg.cap+cfg.tomb {
						// A new tombstone without a free slot: the one
						// nearest its purge time is folded, the new one
						// on a tie.
						if foldNearest(seed, step, home, purge) {
							if p != nil {
								t.Fatalf("seed %d step %d: folded tombstone returned", seed, step)
							}
							folded[home] = append(folded[home], mEntry{tomb: true, expires: purge, id: id})
							break
						}
					}
					model[home] = mEntry{tomb: true, expires: purge, id: id}
				case op < 7: // Delete
					_, had := model[home]
					if tb.Delete(home) != had {
						t.Fatalf("seed %d step %d: Delete(%d) != %v", seed, step, home, had)
					}
					delete(model, home)
				default: // time passes, Expire
					now += rng.Int64N(20 * sec)
					if rng.IntN(50) == 0 {
						now += rng.Int64N(200000 * sec)
					}
					if d, ok := tb.NextDeadline(); ok && rng.IntN(3) == 0 && d > now-sec {
						now = d // exactly at a deadline
					}
					var gone []uint32
					n := tb.Expire(now, func(e *Entry) { gone = append(gone, e.Home) })
					var want []uint32
					for h, e := range model {
						if e.expires <= now {
							want = append(want, h)
							delete(model, h)
						}
					}
					sort.Slice(gone, func(i, j int) bool { return gone[i] < gone[j] })
					sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
					if n != len(gone) || fmt.Sprint(gone) != fmt.Sprint(want) {
						t.Fatalf("seed %d step %d: Expire(%d) = %v, want %v", seed, step, now, gone, want)
					}
				}
				// Compare everything.
				l, tm := nLive()
				if tb.Len() != l || tb.Tombs() != tm {
					t.Fatalf("seed %d step %d: Len/Tombs %d/%d, model %d/%d", seed, step, tb.Len(), tb.Tombs(), l, tm)
				}
				for h, fs := range folded {
					for _, f := range fs {
						if _, held := model[h]; !held && f.expires > now && !tb.Covered(h, f.id, now) {
							t.Fatalf("seed %d step %d: folded tombstone %d id %d purge %d not covered at %d", seed, step, h, f.id, f.expires, now)
						}
					}
				}
				var minAt int64 = 1 << 62
				for h, e := range model {
					p := tb.Get(h)
					if p == nil || p.Tombstone() != e.tomb || p.Expires != e.expires || p.ID != e.id || p.Home != h {
						t.Fatalf("seed %d step %d: Get(%d) = %+v, model %+v", seed, step, h, p, e)
					}
					minAt = min(minAt, e.expires)
				}
				d, ok := tb.NextDeadline()
				if ok != (len(model) > 0) || (ok && d != minAt) {
					t.Fatalf("seed %d step %d: NextDeadline %d %v, model %d", seed, step, d, ok, minAt)
				}
				if step == 4999 && cfg.folds && tb.Stats().TombEvicted == 0 {
					t.Fatalf("cfg %+v seed %d: the model never filled the table (no fold tested)", cfg, seed)
				}
				if step%97 == 0 {
					n := 0
					tb.Range(func(e *Entry) bool {
						if _, ok := model[e.Home]; !ok {
							t.Fatalf("seed %d step %d: Range saw %d not in model", seed, step, e.Home)
						}
						n++
						return true
					})
					if n != len(model) {
						t.Fatalf("seed %d step %d: Range saw %d, model %d", seed, step, n, len(model))
					}
				}
			}
		}
	}
}

func TestAllocsPerRun(t *testing.T) {
	tb := New(1000, 100)
	now := t0
	tb.Expire(now, nil)
	var h uint32
	var sink int
	fn := func(e *Entry) { sink++ }
	allocs := testing.AllocsPerRun(1000, func() {
		h = (h + 1) % 2000
		now += sec / 10
		if _, err := tb.Put(live(h, now, 30)); err != nil && !errors.Is(err, ErrFull) {
			t.Fatal(err)
		}
		_ = tb.Get(h + 1)
		tb.Tombstone(h+5000, 1, 1, now+5*sec)
		tb.Delete(h + 3)
		tb.Expire(now, fn)
		tb.NextDeadline()
		tb.Range(func(*Entry) bool { return true })
	})
	if allocs != 0 {
		t.Fatalf("allocs per operation round = %v, want 0", allocs)
	}
}

// TestMemory reports the per-entry size and the table's preallocated bytes.
func TestMemory(t *testing.T) {
	// 64 bytes of binding (hot fields first: one cache line for the index
	// and the wheels) + 48 of NAT endpoint and prefixes (nets.go).
	if s := unsafe.Sizeof(Entry{}); s != 128 {
		t.Errorf("Entry is %d bytes; keep it at 128 (64 + the 48 bytes of NAT endpoint and %d prefixes + a fleet key, padded)", s, MaxPrefixes)
	}
	for _, n := range []int{100_000, 1_000_000} {
		t.Logf("capacity %d (+%d tombs): %.1f MiB preallocated", n, n/10, float64(New(n, n/10).Bytes())/(1<<20))
	}
}

func benchTable(b *testing.B, n int) (*Table, []uint32) {
	tb := New(n, n/10)
	homes := make([]uint32, n)
	for i := range homes {
		homes[i] = 0x0a000000 + uint32(i)*3
	}
	tb.Expire(t0, nil)
	return tb, homes
}

func forSizes(b *testing.B, f func(b *testing.B, n int)) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) { f(b, n) })
	}
}

func BenchmarkPutNew(b *testing.B) {
	forSizes(b, func(b *testing.B, n int) {
		tb, homes := benchTable(b, n)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			k := i % n
			if k == 0 && i > 0 {
				b.StopTimer()
				tb.Clear()
				b.StartTimer()
			}
			if _, err := tb.Put(live(homes[k], t0, 1800)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkPutRenew(b *testing.B) {
	forSizes(b, func(b *testing.B, n int) {
		tb, homes := benchTable(b, n)
		for _, h := range homes {
			tb.Put(live(h, t0, 1800))
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := tb.Put(live(homes[i%n], t0+int64(i/n+1)*sec, 1800)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkGet(b *testing.B) {
	forSizes(b, func(b *testing.B, n int) {
		tb, homes := benchTable(b, n)
		for _, h := range homes {
			tb.Put(live(h, t0, 1800))
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if tb.Get(homes[i%n]) == nil {
				b.Fatal("missing")
			}
		}
	})
}

// BenchmarkExpire: the table holds n bindings with evenly spread deadlines
// (lifetime 1800 s) that are never renewed. Each op moves time on by one
// deadline gap and, when the owner's timer would fire, expires what is due and
// registers it anew: steady state of a full agent whose nodes let bindings
// lapse. "exact" arms the timer at NextDeadline (one binding per Expire, the
// ~1 s slot rescanned each time); "wake" at NextWake (one pass per slot).
func BenchmarkExpire(b *testing.B) {
	for _, mode := range []string{"exact", "wake"} {
		b.Run(mode, func(b *testing.B) {
			forSizes(b, func(b *testing.B, n int) {
				tb, homes := benchTable(b, n)
				const life = 1800 * sec
				gap := life / int64(n)
				for i, h := range homes {
					tb.Put(Entry{Home: h, Registered: t0, Expires: t0 + int64(i+1)*gap})
				}
				var expired []uint32 = make([]uint32, 0, n)
				collect := func(e *Entry) { expired = append(expired, e.Home) }
				b.ReportAllocs()
				b.ResetTimer()
				now := t0
				for i := 0; i < b.N; i++ {
					now += gap
					var due int64
					if mode == "exact" {
						due, _ = tb.NextDeadline()
					} else {
						due, _ = tb.NextWake()
					}
					if now >= due {
						expired = expired[:0]
						tb.Expire(now, collect)
						for _, h := range expired {
							if _, err := tb.Put(Entry{Home: h, Registered: now, Expires: now + life}); err != nil {
								b.Fatal(err)
							}
						}
					}
				}
				if tb.Len() != n {
					b.Fatalf("Len %d", tb.Len())
				}
			})
		})
	}
}

// TestRSS fills a table to 100k and 1M bindings and logs how much resident
// memory that costs (VmRSS delta: untouched slab and index pages are never
// faulted in, so a table sized for 1M costs little until it fills). Run one
// size per process for clean figures (a second table may reuse, and so
// zero, the first one's pages):
//
//	BINDING_RSS_N=100000 go test -run RSS -v ./ha/internal/binding
func TestRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a 1M-entry table; skipped under -short")
	}
	sizes := []int{100_000, 1_000_000}
	if s := os.Getenv("BINDING_RSS_N"); s != "" {
		n, _ := strconv.Atoi(s)
		sizes = []int{n}
	}
	for _, n := range sizes {
		before := vmRSS(t)
		tb := New(n, n/10)
		empty := vmRSS(t)
		for i := 0; i < n; i++ {
			mustPut(t, tb, live(0x0a000000+uint32(i), t0, int64(60+i%1800)))
		}
		for i := 0; i < n/10; i++ {
			tb.Tombstone(0x0b000000+uint32(i), 1, 1, t0+int64(i%300)*sec)
		}
		full := vmRSS(t)
		t.Logf("n=%d: allocated %.1f MiB; RSS empty +%.1f MiB, full (+10%% tombs) +%.1f MiB",
			n, float64(tb.Bytes())/(1<<20), float64(empty-before)/(1<<20), float64(full-before)/(1<<20))
		runtimeKeepAlive(tb)
	}
}

// The Source beside an entry is found from the entry's pointer, cleared by
// every Put (a peer's update must not keep the last registration's source),
// written without allocating, and one cache line.
func TestSource(t *testing.T) {
	tb := New(4, 2)
	e, err := tb.Put(Entry{Home: 1, CareOf: 2, Registered: 1, Expires: int64(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	s := tb.SourceOf(e)
	if s == nil || s.Addr != 0 || len(s.NAI()) != 0 {
		t.Fatalf("fresh source %+v", s)
	}
	long := bytes.Repeat([]byte("n"), 100)
	if a := testing.AllocsPerRun(100, func() { s.Addr, s.Port = 7, 434; s.SetNAI(long) }); a != 0 {
		t.Fatalf("SetNAI allocates %v", a)
	}
	if got := tb.SourceOf(tb.Get(1)); got != s || len(got.NAI()) != NAIMax || got.Port != 434 {
		t.Fatalf("SourceOf(Get) = %p %+v, want %p with a %d-byte NAI", got, got, s, NAIMax)
	}
	if _, err := tb.Put(Entry{Home: 1, CareOf: 3, Registered: 2, Expires: int64(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if s.Addr != 0 || len(s.NAI()) != 0 {
		t.Fatalf("Put kept the previous registration's source: %+v", s)
	}
	if tb.SourceOf(&Entry{}) != nil {
		t.Fatal("SourceOf an entry of no table")
	}
	if n := unsafe.Sizeof(Source{}); n != 64 {
		t.Errorf("Source is %d bytes; keep it at 64 (one cache line)", n)
	}
}
