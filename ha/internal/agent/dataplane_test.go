package agent

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"math"
	"net/netip"
	"runtime/debug"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/internal/datapath"
	"github.com/hagent/hagent/ha/mip"
)

// fakeDP is a datapath that refuses the adds of chosen home addresses and
// records what it was asked, allocation-free.
type fakeDP struct {
	refuse  map[netip.Addr]error // by home address
	byCoA   map[netip.Addr]error // by care-of address
	errs    []error
	applies int
	adds    []datapath.Binding // of the last Apply
	dels    []netip.Addr       // of the last Apply
	nAdds   int
	nDels   int
}

func newFakeDP() *fakeDP {
	return &fakeDP{refuse: map[netip.Addr]error{}, byCoA: map[netip.Addr]error{}, errs: make([]error, 0, 256),
		adds: make([]datapath.Binding, 0, 256), dels: make([]netip.Addr, 0, 256)}
}

func (f *fakeDP) Apply(adds []datapath.Binding, dels []netip.Addr) []error {
	f.applies++
	f.nAdds += len(adds)
	f.nDels += len(dels)
	f.adds = append(f.adds[:0], adds...)
	f.dels = append(f.dels[:0], dels...)
	var res []error
	for i, b := range adds {
		err, ok := f.refuse[b.Home]
		if !ok {
			err, ok = f.byCoA[b.CareOf]
		}
		if ok {
			if res == nil {
				res = f.errs[:len(adds)+len(dels)]
				clear(res)
			}
			res[i] = err
		}
	}
	return res
}

func (f *fakeDP) Setup() error                                                  { return nil }
func (f *fakeDP) Supports(datapath.Encap) bool                                  { return true }
func (f *fakeDP) AddVIP(netip.Prefix) error                                     { return nil }
func (f *fakeDP) DelVIP(netip.Prefix) error                                     { return nil }
func (f *fakeDP) Withdraw() error                                               { return nil }
func (f *fakeDP) Links() <-chan datapath.LinkEvent                              { return nil }
func (f *fakeDP) Stats() datapath.Stats                                         { return datapath.Stats{} }
func (f *fakeDP) Close() error                                                  { return nil }
func (f *fakeDP) Reconcile(iter.Seq[datapath.Binding]) (int, int, error)        { return 0, 0, nil }
func (f *fakeDP) BeginScan() *datapath.Scan                                     { return &datapath.Scan{} }
func (f *fakeDP) ScanKernel(*datapath.Scan)                                     {}
func (f *fakeDP) ConvergeStart(*datapath.Scan) error                            { return nil }
func (f *fakeDP) ConvergeSome(*datapath.Scan, iter.Seq[datapath.Binding]) error { return nil }
func (f *fakeDP) ConvergeFinish(*datapath.Scan) (int, int, error)               { return 0, 0, nil }

var (
	home1 = netip.MustParseAddr("127.0.0.10")
	home2 = netip.MustParseAddr("127.0.0.11")
)

// dpHarness is a standalone agent driven by hand (as replHarness) whose
// datapath is a fakeDP. Two nodes: 127.0.0.10 and 127.0.0.11.
type dpHarness struct {
	scripted
	dp  *fakeDP
	ids map[netip.Addr]uint64
}

// gratuitous ARP for the bindings the kernel took goes to an interface
// that does not exist: the tests send nothing beyond loopback.
const noIf = "hagent-noif0"

func twoNodes(cfg *config.Config) {
	n := cfg.Nodes[0]
	n.Name, n.HomeAddress = "mn2", home2
	cfg.Nodes = append(cfg.Nodes, n)
}

func newDPHarness(t *testing.T) *dpHarness {
	t.Helper()
	cfg := loopbackConfig(t, 8)
	twoNodes(cfg)
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	h := &dpHarness{scripted: scripted{t: t, a: a, now: int64(time.Second)}, dp: newFakeDP(), ids: map[netip.Addr]uint64{}}
	a.grp = &group{mode: "standalone"}
	a.newRegistrar()
	h.r = a.reg
	a.dpl = &dataplane{dp: h.dp, active: true, ifname: noIf}
	a.reg.kernel = true
	return h
}

// reqFor builds a registration of home from care-of coa with a fresh
// Identification.
func reqFor(t testing.TB, ids map[netip.Addr]uint64, a *Agent, home, coa netip.Addr, flags uint8) []byte {
	if ids[home] == 0 {
		ids[home] = mip.Timestamp(time.Now())
	}
	ids[home]++
	r := rq{Request: mip.Request{Flags: flags, Lifetime: 300, HomeAddr: home, HomeAgent: a.cfg.Agent.VirtualAddress, CareOf: coa, ID: ids[home]},
		spi: 256, key: key1}
	return r.bytes(t)
}

// replies takes the n replies sent, by home address; there must be no more.
func (h *dpHarness) replies(n int) map[netip.Addr]mip.Reply {
	h.t.Helper()
	if len(h.sent) != n {
		h.t.Fatalf("%d replies, want %d", len(h.sent), n)
	}
	got := map[netip.Addr]mip.Reply{}
	for _, b := range h.sent {
		r := verifyReply(h.t, b, key1)
		if _, dup := got[r.HomeAddr]; dup {
			h.t.Fatalf("two replies for %s", r.HomeAddr)
		}
		got[r.HomeAddr] = r
	}
	h.sent = h.sent[:0]
	return got
}

// Issue 5: a batch of two registrations, the kernel refuses one route. Both
// go to the kernel in one Apply, before any write and any reply; the
// refused node hears 130 (authenticated, lifetime 0), the other "accepted";
// the refused binding is never written (the kernel is asked first), its
// node's Identification still counts for replay, and what the refused add
// may have left is removed by the next flush; the counter moves.
func TestKernelRefusalDeniesTheNode(t *testing.T) {
	h := newDPHarness(t)
	h.dp.refuse[home2] = errors.New("file exists")
	h.batch(reqFor(t, h.ids, h.a, home1, coa, 0), reqFor(t, h.ids, h.a, home2, coa, 0))
	if h.dp.applies != 1 || len(h.dp.adds) != 2 {
		t.Fatalf("kernel saw %d batches (last: %d adds), want the batch's 2 adds in 1", h.dp.applies, len(h.dp.adds))
	}
	rs := h.replies(2)
	if r := rs[home1]; r.Code != mip.CodeAccepted || r.Lifetime == 0 {
		t.Fatalf("accepted node: code %d lifetime %d", r.Code, r.Lifetime)
	}
	if r := rs[home2]; r.Code != mip.CodeInsufficientResources || r.Lifetime != 0 || r.ID != h.ids[home2] {
		t.Fatalf("refused node: code %d lifetime %d id %#x", r.Code, r.Lifetime, r.ID)
	}
	tab := h.a.core.Table()
	if e := tab.Get(binding.AddrU32(home1)); e == nil || e.Tombstone() {
		t.Fatal("the accepted binding is gone")
	}
	if e := tab.Get(binding.AddrU32(home2)); e != nil {
		t.Fatalf("the refused binding was written: %+v", e)
	}
	s := &h.a.core.Stats
	if s.Withdrawn != 1 || s.Codes[mip.CodeAccepted] != 1 || s.Codes[mip.CodeInsufficientResources] != 1 {
		t.Fatalf("withdrawn %d, codes 0: %d 130: %d", s.Withdrawn, s.Codes[0], s.Codes[130])
	}
	if !hasCounter(h.a.showStats().General, "withdrawn: kernel refused the route", 1) {
		t.Fatalf("show stats: %+v", h.a.showStats().General)
	}
	// What the refused add may have left (a failed replace keeps the old
	// route) is removed by the next flush.
	h.a.flushDataplane()
	if h.dp.applies != 2 || len(h.dp.dels) != 1 || h.dp.dels[0] != home2 {
		t.Fatalf("after the flush: %d batches, dels %v", h.dp.applies, h.dp.dels)
	}
	// A replay of the refused request is still a replay.
	delete(h.dp.refuse, home2)
	h.ids[home2]--
	h.batch(reqFor(t, h.ids, h.a, home2, coa, 0))
	if r := h.replies(1)[home2]; r.Code != mip.CodeIDMismatch {
		t.Fatalf("replay of the refused request: code %d, want 133", r.Code)
	}
	// The node retries and the kernel takes it now.
	h.batch(reqFor(t, h.ids, h.a, home2, coa, 0))
	if r := h.replies(1)[home2]; r.Code != mip.CodeAccepted {
		t.Fatalf("retry: code %d", r.Code)
	}
}

// A node whose encapsulation the kernel cannot carry hears 139.
func TestKernelWithoutEncapsulationAnswers139(t *testing.T) {
	h := newDPHarness(t)
	h.dp.refuse[home1] = fmt.Errorf("datapath: binding: gre: %w", datapath.ErrUnsupported)
	h.batch(reqFor(t, h.ids, h.a, home1, coa, 0))
	if r := h.replies(1)[home1]; r.Code != mip.CodeEncapUnavailable {
		t.Fatalf("code %d, want 139", r.Code)
	}
}

// Two requests of one node in one batch: the second is decided after the
// first's write (its replay check and whether the route moves depend on
// it), each programmed first and answered by the kernel's own answer.
func TestTwoRequestsOfANodeInOneBatch(t *testing.T) {
	h := newDPHarness(t)
	coa2 := netip.MustParseAddr("198.51.100.99")
	first := reqFor(t, h.ids, h.a, home1, coa, 0)
	second := reqFor(t, h.ids, h.a, home1, coa2, 0)
	h.dp.byCoA[coa2] = errors.New("no route")
	h.batch(first, second)
	if h.dp.applies != 2 {
		t.Fatalf("%d kernel batches, want 2: the second request waits for the first's write", h.dp.applies)
	}
	var codes []mip.Code
	if len(h.sent) != 2 {
		t.Fatalf("%d replies, want 2", len(h.sent))
	}
	for _, b := range h.sent {
		codes = append(codes, verifyReply(t, b, key1).Code)
	}
	if codes[0] != mip.CodeAccepted || codes[1] != mip.CodeInsufficientResources {
		t.Fatalf("codes %v: want the first accepted and the second (refused by the kernel) denied", codes)
	}
	e := h.a.core.Table().Get(binding.AddrU32(home1))
	if e == nil || e.Tombstone() || e.CareOf != binding.AddrU32(coa) || h.a.core.Stats.Withdrawn != 1 {
		t.Fatalf("entry %+v refused %d: want the first binding kept", e, h.a.core.Stats.Withdrawn)
	}
	// The kernel is given the table's binding back (a failed replace may
	// have left the other care-of).
	h.a.flushDataplane()
	if len(h.dp.adds) != 1 || h.dp.adds[0].CareOf != coa {
		t.Fatalf("after the flush: adds %v, want the kept binding again", h.dp.adds)
	}
}

// In a group the kernel is asked before the group: a binding it refuses is
// never written, so the peer never hears of it, and its node hears 130 at
// once (no ack is waited for: nothing was replicated).
func TestKernelRefusalInAGroup(t *testing.T) {
	h := newReplHarness(t, false)
	fdp := newFakeDP()
	h.a.dpl = &dataplane{dp: fdp, active: true, ifname: noIf}
	h.r.kernel = true
	h.peerAcking()
	fdp.refuse[home1] = errors.New("no buffer space")
	// A new care-of, so that the kernel is asked.
	h.id++
	r := rq{Request: mip.Request{Lifetime: 300, HomeAddr: home1, HomeAgent: h.a.cfg.Agent.VirtualAddress,
		CareOf: netip.MustParseAddr("198.51.100.99"), ID: h.id}, spi: 256, key: key1}
	h.send(r.bytes(t))
	h.wantReply(mip.CodeInsufficientResources) // at once, not after the wait
	if n := h.a.hold.Held - h.a.hold.Acked; n != 0 || h.a.hold.Timeouts != 0 {
		t.Fatalf("hold: held %d acked %d timeouts %d: nothing to wait for", h.a.hold.Held, h.a.hold.Acked, h.a.hold.Timeouts)
	}
	if _, ok := h.a.hold.next(); ok {
		t.Fatal("the denied reply is held")
	}
	before := h.id - 1 // the binding peerAcking registered and the peer acknowledged
	if e := h.a.core.Table().Get(binding.AddrU32(home1)); e == nil || e.Tombstone() || e.ID != before || e.CareOf != binding.AddrU32(coa) {
		t.Fatalf("member's binding after the refusal: %+v, want the acknowledged one (id %#x)", e, before)
	}
	if n := h.toPeer(true); n != 0 {
		t.Fatalf("the member sent the peer %d messages about a binding the kernel refused", n)
	}
	if e := h.peerTab.Get(binding.AddrU32(home1)); e == nil || e.Tombstone() || e.ID != before {
		t.Fatalf("peer's binding after the refusal: %+v, want the acknowledged one (id %#x)", e, before)
	}
}

// A batch with a refusal allocates nothing either (the log line is rate
// limited to one a second).
func TestRefusedBatchAllocatesNothing(t *testing.T) {
	h := newDPHarness(t)
	h.dp.refuse[home2] = errors.New("refused")
	reqs := make([][2][]byte, 64)
	for i := range reqs {
		reqs[i] = [2][]byte{reqFor(t, h.ids, h.a, home1, netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}), 0), reqFor(t, h.ids, h.a, home2, coa, 0)}
	}
	i := 0
	h.discard = true
	allocs := testing.AllocsPerRun(50, func() {
		h.a.flushDataplane() // the loop's top: last batch's withdrawal
		h.batch(reqs[i%len(reqs)][0], reqs[i%len(reqs)][1])
		i++
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per batch with a refused binding", allocs)
	}
	if h.a.core.Stats.Withdrawn < 50 {
		t.Fatalf("withdrawn %d: the test measured the wrong path", h.a.core.Stats.Withdrawn)
	}
}

func hasCounter(cs []console.Counter, prefix string, v uint64) bool {
	for _, c := range cs {
		if len(c.Name) >= len(prefix) && c.Name[:len(prefix)] == prefix {
			return c.Value == v
		}
	}
	return false
}

// agent.memory_limit_mib reaches the runtime, and 0 lifts the limit.
func TestSetMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	setMemoryLimit(48)
	if got := debug.SetMemoryLimit(-1); got != 48<<20 {
		t.Fatalf("limit %d, want %d", got, 48<<20)
	}
	setMemoryLimit(0)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("limit %d after 0, want none (MaxInt64)", got)
	}
}

// sliceDP records what the periodic check's slices hand the datapath.
type sliceDP struct {
	*fakeDP
	seen     map[netip.Addr]int
	slices   []int
	finished int
}

func (f *sliceDP) ConvergeSome(_ *datapath.Scan, some iter.Seq[datapath.Binding]) error {
	n := 0
	for b := range some {
		f.seen[b.Home]++
		n++
	}
	f.slices = append(f.slices, n)
	return nil
}

func (f *sliceDP) ConvergeFinish(*datapath.Scan) (int, int, error) { f.finished++; return 0, 0, nil }

// The periodic check converges the table a slice per loop iteration
// (convSlice bindings), every live binding exactly once over the slices,
// tombstones never, and ends once.
func TestPeriodicCheckInSlices(t *testing.T) {
	const n = 2*convSlice + 100
	c, err := NewCore(testConfig(n + 10))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n + 5 {
		if _, err := c.table.Put(binding.Entry{Home: 0x0a000000 + uint32(i), CareOf: 0xc6336401, Node: -1, Expires: 1 << 62}); err != nil {
			t.Fatal(err)
		}
	}
	for i := n; i < n+5; i++ { // five de-registrations kept as tombstones
		c.table.Tombstone(0x0a000000+uint32(i), 1, 0, 1<<62)
	}
	f := &sliceDP{fakeDP: newFakeDP(), seen: map[netip.Addr]int{}}
	a := &Agent{core: c, log: slog.New(slog.DiscardHandler)}
	a.dpl = &dataplane{dp: f, active: true, more: make(chan struct{}, 1)}
	a.reconciled(&datapath.Scan{})
	for a.dpl.conv != nil {
		select {
		case <-a.dpl.more:
			a.convergeSlice()
		default:
			t.Fatalf("a check is converging but did not ask for the next slice (slices so far %v)", f.slices)
		}
	}
	if len(f.slices) != 3 || f.slices[0] != convSlice || f.slices[1] != convSlice || f.slices[2] != 100 {
		t.Errorf("slices %v, want [%d %d 100]", f.slices, convSlice, convSlice)
	}
	if len(f.seen) != n || f.finished != 1 || a.dpl.checks != 1 {
		t.Fatalf("%d homes seen (want %d), finished %d, checks %d", len(f.seen), n, f.finished, a.dpl.checks)
	}
	for h, k := range f.seen {
		if k != 1 {
			t.Fatalf("%v seen %d times", h, k)
		}
	}
}
