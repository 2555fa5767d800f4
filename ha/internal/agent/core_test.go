package agent

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/mip"
)

var (
	haAddr  = netip.MustParseAddr("192.0.2.1")
	haVIP   = netip.MustParseAddr("192.0.2.254")
	mn1     = netip.MustParseAddr("192.0.2.10")
	coa     = netip.MustParseAddr("198.51.100.7")
	faAddr  = netip.MustParseAddr("198.51.100.1")
	key1    = []byte("0123456789abcdef")
	keyNAI  = []byte("nai-node-key-123")
	keyPool = []byte("pool-shared-key!")
	keyNon  = []byte("nonce-node-key-1")
	keyNoRT = []byte("no-reverse-tun-k")
	keyFA   = []byte("foreign-agent-ky")
	wall0   = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
)

// testConfig is a validated-looking config built directly, so the Core's
// tests do not depend on the TOML layer.
func testConfig(capacity int) *config.Config {
	return &config.Config{
		Path: "test.toml",
		Agent: config.Agent{
			Interface: "eth0", Address: haAddr, VirtualAddress: haVIP,
			HomeNetwork: netip.MustParsePrefix("192.0.2.0/24"), ListenPort: 434,
			Capacity: capacity, TombstoneCapacity: 8, TombstoneLifetime: time.Minute,
			MaxLifetime: 600, ReplayTolerance: 7 * time.Second, ReverseTunnel: true,
			Encapsulations: []string{"ipip"}, AgentID: 1,
		},
		Nodes: []config.Node{
			{Name: "mn1", HomeAddress: mn1, SPI: 256, Key: key1, Algorithm: "hmac-md5", Replay: "timestamp", ReverseTunnel: true},
			{Name: "nai", NAI: "mn2@example.net", Pool: netip.MustParsePrefix("192.0.2.128/28"), SPI: 300, Key: keyNAI, Algorithm: "hmac-md5", Replay: "timestamp", ReverseTunnel: true},
			{Name: "pool", Pool: netip.MustParsePrefix("192.0.2.64/27"), SPI: 400, Key: keyPool, Algorithm: "hmac-md5", Replay: "timestamp", ReverseTunnel: true},
			{Name: "nonce", HomeAddress: netip.MustParseAddr("192.0.2.11"), SPI: 500, Key: keyNon, Algorithm: "hmac-md5", Replay: "nonce", ReverseTunnel: true},
			{Name: "nort", HomeAddress: netip.MustParseAddr("192.0.2.12"), SPI: 501, Key: keyNoRT, Algorithm: "hmac-md5", Replay: "timestamp", ReverseTunnel: false},
		},
		ForeignAgents: []config.ForeignAgent{{Address: faAddr, SPI: 600, Key: keyFA, Algorithm: "hmac-md5"}},
	}
}

type rq struct {
	mip.Request
	spi   uint32
	key   []byte // nil: no MN-HA extension
	faSPI uint32 // with faKey: append an FA-HA extension
	faKey []byte
}

func (r rq) bytes(t testing.TB) []byte {
	b, err := r.Request.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.key != nil {
		b = mip.AppendMHAuth(b, 0, r.spi, mip.NewHMACMD5(r.key))
	}
	if r.faKey != nil {
		b = mip.AppendFHAuth(b, 0, r.faSPI, mip.NewHMACMD5(r.faKey))
	}
	return b
}

func req1(id uint64) rq {
	return rq{Request: mip.Request{Lifetime: 300, HomeAddr: mn1, HomeAgent: haVIP, CareOf: coa, ID: id}, spi: 256, key: key1}
}

type result struct {
	rep  mip.Reply
	from netip.Addr
	ch   Change
	raw  []byte
}

func handle(t *testing.T, c *Core, now int64, src netip.AddrPort, dst netip.Addr, pkt []byte) *result {
	t.Helper()
	out, from, ch := sealed(c, now, wall0, src, dst, pkt, make([]byte, 0, ReplyBufLen))
	if out == nil {
		return nil
	}
	r := &result{from: from, ch: ch, raw: out}
	if err := r.rep.UnmarshalBinary(out); err != nil {
		t.Fatalf("reply does not parse: %v (% x)", err, out)
	}
	return r
}

var mnSrc = netip.AddrPortFrom(coa, 49152)

func ts(off time.Duration) uint64 { return mip.Timestamp(wall0.Add(off)) }

// The datapath has no minimal encapsulation (RFC 2004): a request with the
// M bit is answered 139 even from a config that lists "minimal" (config.Parse
// refuses it; this guards other callers).
func TestMinimalEncapsulationNeverOffered(t *testing.T) {
	cfg := testConfig(4)
	cfg.Agent.Encapsulations = []string{"ipip", "gre", "minimal"}
	c, err := NewCore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := req1(ts(0))
	m.Flags = mip.FlagM
	if r := handle(t, c, 0, mnSrc, haVIP, m.bytes(t)); r.rep.Code != mip.CodeEncapUnavailable {
		t.Fatalf("M bit with \"minimal\" configured: code %d, want 139", r.rep.Code)
	}
	if err := c.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	m.ID = ts(time.Second)
	if r := handle(t, c, 0, mnSrc, haVIP, m.bytes(t)); r.rep.Code != mip.CodeEncapUnavailable {
		t.Fatalf("M bit after a reload: code %d, want 139", r.rep.Code)
	}
}

// The GRE device is created only at start (dataplane.go), so adding "gre"
// by SIGHUP would be accepted yet G-bit requests would keep getting 139: a
// change of agent.encapsulations needs a restart; their order does not.
func TestReloadRefusesEncapsulationChange(t *testing.T) {
	cfg := testConfig(4)
	cfg.Agent.Encapsulations = []string{"ipip", "gre"}
	c, err := NewCore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, encaps := range [][]string{{"ipip"}, {"gre"}} {
		n := testConfig(4)
		n.Agent.Encapsulations = encaps
		if err := c.Reload(n); err == nil || !strings.Contains(err.Error(), "agent.encapsulations changed, which needs a restart") {
			t.Errorf("reload to %q: %v, want a refusal naming agent.encapsulations", encaps, err)
		}
	}
	same := testConfig(4)
	same.Agent.Encapsulations = []string{"gre", "ipip"}
	if err := c.Reload(same); err != nil {
		t.Errorf("reload with the same encapsulations in another order: %v", err)
	}
}

func TestReplyCodes(t *testing.T) {
	tests := []struct {
		name string
		r    rq
		src  netip.AddrPort
		dst  netip.Addr
		code mip.Code
		auth bool // reply must carry a valid MN-HA authenticator with this key
		key  []byte
	}{
		{"accepted", req1(ts(0)), mnSrc, haVIP, mip.CodeAccepted, true, key1},
		{"accepted to own unicast address", func() rq { r := req1(ts(0)); r.HomeAgent = haAddr; return r }(), mnSrc, haAddr, mip.CodeAccepted, true, key1},
		{"S without simultaneous bindings", func() rq { r := req1(ts(0)); r.Flags = mip.FlagS; return r }(), mnSrc, haVIP, mip.CodeAcceptedNoSimultaneous, true, key1},
		{"unknown node", rq{Request: mip.Request{Lifetime: 300, HomeAddr: netip.MustParseAddr("192.0.2.99"), HomeAgent: haVIP, CareOf: coa, ID: ts(0)}, spi: 256, key: key1}, mnSrc, haVIP, mip.CodeAdminProhibited, false, nil},
		{"NAI node asks for an address outside its pool", rq{Request: mip.Request{Lifetime: 300, HomeAddr: netip.MustParseAddr("192.0.2.200"), HomeAgent: haVIP, CareOf: coa, ID: ts(0), NAI: []byte("mn2@example.net")}, spi: 300, key: keyNAI}, mnSrc, haVIP, mip.CodeAdminProhibited, true, keyNAI},
		{"bad key", func() rq { r := req1(ts(0)); r.key = []byte("wrong-key-000000"); return r }(), mnSrc, haVIP, mip.CodeMNAuthFailed, false, nil},
		{"wrong SPI", func() rq { r := req1(ts(0)); r.spi = 257; return r }(), mnSrc, haVIP, mip.CodeMNAuthFailed, false, nil},
		{"no authenticator", func() rq { r := req1(ts(0)); r.key = nil; return r }(), mnSrc, haVIP, mip.CodeMNAuthFailed, false, nil},
		{"FA-HA missing", req1(ts(0)), netip.AddrPortFrom(faAddr, 434), haVIP, mip.CodeFAAuthFailed, true, key1},
		{"FA-HA bad", func() rq { r := req1(ts(0)); r.faSPI, r.faKey = 600, []byte("bad-fa-key-00000"); return r }(), netip.AddrPortFrom(faAddr, 434), haVIP, mip.CodeFAAuthFailed, true, key1},
		{"FA-HA good", func() rq { r := req1(ts(0)); r.faSPI, r.faKey = 600, keyFA; return r }(), netip.AddrPortFrom(faAddr, 434), haVIP, mip.CodeAccepted, true, key1},
		{"timestamp too old", req1(ts(-time.Minute)), mnSrc, haVIP, mip.CodeIDMismatch, true, key1},
		{"timestamp in the future", req1(ts(time.Minute)), mnSrc, haVIP, mip.CodeIDMismatch, true, key1},
		{"unknown home agent", func() rq { r := req1(ts(0)); r.HomeAgent = netip.MustParseAddr("203.0.113.1"); return r }(), mnSrc, netip.MustParseAddr("192.0.2.255"), mip.CodeUnknownHA, true, key1},
		{"reverse tunnel refused for node", rq{Request: mip.Request{Flags: mip.FlagT, Lifetime: 300, HomeAddr: netip.MustParseAddr("192.0.2.12"), HomeAgent: haVIP, CareOf: coa, ID: ts(0)}, spi: 501, key: keyNoRT}, mnSrc, haVIP, mip.CodeReverseTunnelUnavailable, true, keyNoRT},
		{"GRE not offered", func() rq { r := req1(ts(0)); r.Flags = mip.FlagG; return r }(), mnSrc, haVIP, mip.CodeEncapUnavailable, true, key1},
		{"minimal encapsulation not offered", func() rq { r := req1(ts(0)); r.Flags = mip.FlagM; return r }(), mnSrc, haVIP, mip.CodeEncapUnavailable, true, key1},
		{"reverse tunnel accepted", func() rq { r := req1(ts(0)); r.Flags = mip.FlagT; return r }(), mnSrc, haVIP, mip.CodeAccepted, true, key1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCore(testConfig(4))
			if err != nil {
				t.Fatal(err)
			}
			r := handle(t, c, 0, tt.src, tt.dst, tt.r.bytes(t))
			if r == nil {
				t.Fatal("no reply")
			}
			if r.rep.Code != tt.code {
				t.Fatalf("code %d (%s), want %d (%s)", r.rep.Code, r.rep.Code, tt.code, tt.code)
			}
			if c.Stats.Codes[tt.code] != 1 {
				t.Errorf("counter for code %d = %d, want 1", tt.code, c.Stats.Codes[tt.code])
			}
			if tt.auth {
				var s [64]byte
				if !r.rep.MHAuth.Present || !mip.Verify(r.raw, r.rep.MHAuth, mip.NewHMACMD5(tt.key), &s) {
					t.Errorf("reply authenticator missing or invalid")
				}
			} else if r.rep.MHAuth.Present {
				t.Errorf("reply to an unauthenticated request carries an authenticator")
			}
			accepted := tt.code.Accepted()
			if got := c.table.Len(); accepted != (got == 1) {
				t.Errorf("table has %d bindings after code %d", got, tt.code)
			}
			if accepted && r.rep.ID != tt.r.ID {
				t.Errorf("reply ID %#x, want the request's %#x", r.rep.ID, tt.r.ID)
			}
			switch tt.code {
			case mip.CodeIDMismatch:
				if uint32(r.rep.ID) != uint32(tt.r.ID) {
					t.Errorf("133: low 32 bits %#x, want the request's %#x", uint32(r.rep.ID), uint32(tt.r.ID))
				}
				if r.rep.ID>>32 != ts(0)>>32 {
					t.Errorf("133: high 32 bits %#x, want the agent's time %#x", r.rep.ID>>32, ts(0)>>32)
				}
			case mip.CodeUnknownHA:
				if r.rep.HomeAgent != haAddr || r.from != haAddr {
					t.Errorf("136: home agent %s from %s, want our address %s", r.rep.HomeAgent, r.from, haAddr)
				}
			}
			if tt.code != mip.CodeUnknownHA && r.from != tt.dst {
				t.Errorf("reply from %s, want the address the request was sent to (%s)", r.from, tt.dst)
			}
		})
	}
}

func newCore(t testing.TB, capacity int) *Core {
	c, err := NewCore(testConfig(capacity))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLifecycle(t *testing.T) {
	c := newCore(t, 4)
	sec := int64(time.Second)

	r := handle(t, c, 0, mnSrc, haVIP, func() rq { r := req1(ts(0)); r.Lifetime = 9999; return r }().bytes(t))
	if r.rep.Code != 0 || r.rep.Lifetime != 600 || r.ch.Kind != Registered {
		t.Fatalf("register: code %d lifetime %d change %s; want 0, 600 (capped), registered", r.rep.Code, r.rep.Lifetime, r.ch.Kind)
	}
	// A lost reply: the node retransmits the same request; it is answered
	// again and nothing changes.
	r = handle(t, c, 5*sec, mnSrc, haVIP, func() rq { r := req1(ts(0)); r.Lifetime = 9999; return r }().bytes(t))
	if r.rep.Code != 0 || r.ch.Kind != NoChange || c.Stats.Duplicates != 1 || r.rep.Lifetime != 595 {
		t.Fatalf("duplicate: code %d change %s dups %d lifetime %d", r.rep.Code, r.ch.Kind, c.Stats.Duplicates, r.rep.Lifetime)
	}
	// The same identification with another care-of is a replay.
	rp := req1(ts(0))
	rp.CareOf = netip.MustParseAddr("198.51.100.99")
	if r = handle(t, c, 5*sec, mnSrc, haVIP, rp.bytes(t)); r.rep.Code != mip.CodeIDMismatch {
		t.Fatalf("replay: code %d, want 133", r.rep.Code)
	}
	// Renewal from a new care-of address.
	rn := req1(ts(time.Second))
	rn.CareOf = netip.MustParseAddr("198.51.100.8")
	r = handle(t, c, 10*sec, mnSrc, haVIP, rn.bytes(t))
	if r.rep.Code != 0 || r.ch.Kind != Renewed || r.ch.Entry.CareOf != binding.AddrU32(rn.CareOf) {
		t.Fatalf("renew: code %d change %s", r.rep.Code, r.ch.Kind)
	}
	e := c.table.Get(binding.AddrU32(mn1))
	if e == nil || e.CareOf != binding.AddrU32(rn.CareOf) || e.Expires != 10*sec+300*sec {
		t.Fatalf("entry after renewal: %+v", e)
	}
	// De-registration by care-of = home address.
	rd := req1(ts(2 * time.Second))
	rd.CareOf = mn1
	r = handle(t, c, 11*sec, mnSrc, haVIP, rd.bytes(t))
	if r.rep.Code != 0 || r.rep.Lifetime != 0 || r.ch.Kind != Deregistered {
		t.Fatalf("deregister: code %d lifetime %d change %s", r.rep.Code, r.rep.Lifetime, r.ch.Kind)
	}
	if c.table.Len() != 0 || c.table.Tombs() != 1 {
		t.Fatalf("after deregistration: %d live, %d tombstones; want 0, 1", c.table.Len(), c.table.Tombs())
	}
	// An old registration replayed after the de-registration changes nothing.
	if r = handle(t, c, 12*sec, mnSrc, haVIP, rn.bytes(t)); r.rep.Code != mip.CodeIDMismatch || c.table.Len() != 0 {
		t.Fatalf("replay after deregistration: code %d, live %d", r.rep.Code, c.table.Len())
	}
	// Register again (lifetime 0 de-registration also tested), then expire.
	r = handle(t, c, 13*sec, mnSrc, haVIP, req1(ts(3*time.Second)).bytes(t))
	if r.rep.Code != 0 || r.ch.Kind != Registered {
		t.Fatalf("re-register after tombstone: code %d change %s", r.rep.Code, r.ch.Kind)
	}
	var expired []Change
	c.Expire(13*sec+299*sec, func(ch Change) { expired = append(expired, ch) })
	if len(expired) != 0 {
		t.Fatalf("expired early: %v", expired)
	}
	c.Expire(13*sec+300*sec, func(ch Change) { expired = append(expired, ch) })
	if len(expired) != 1 || expired[0].Kind != Expired || c.table.Len() != 0 {
		t.Fatalf("expiry: %v, live %d", expired, c.table.Len())
	}
	r = handle(t, c, 400*sec, mnSrc, haVIP, func() rq { r := req1(ts(4 * time.Second)); r.Lifetime = 0; return r }().bytes(t))
	if r.rep.Code != 0 || r.ch.Kind != Deregistered {
		t.Fatalf("lifetime-0 deregistration of an expired binding: code %d change %s", r.rep.Code, r.ch.Kind)
	}
}

func TestTimestampResync(t *testing.T) {
	c := newCore(t, 4)
	// The node's clock is an hour behind: 133, then it resynchronises from
	// the reply's high 32 bits and is accepted.
	r := handle(t, c, 0, mnSrc, haVIP, req1(ts(-time.Hour)).bytes(t))
	if r.rep.Code != mip.CodeIDMismatch {
		t.Fatalf("code %d, want 133", r.rep.Code)
	}
	id := mip.ResyncID(r.rep.ID, 0, wall0.Add(-time.Hour))
	r = handle(t, c, 0, mnSrc, haVIP, req1(id).bytes(t))
	if r.rep.Code != 0 {
		t.Fatalf("after resync: code %d, want 0", r.rep.Code)
	}
}

func TestTableFullEvictsNothing(t *testing.T) {
	c := newCore(t, 3)
	for i := 0; i < 3; i++ {
		r := rq{Request: mip.Request{Lifetime: 300, HomeAddr: netip.AddrFrom4([4]byte{192, 0, 2, byte(65 + i)}), HomeAgent: haVIP, CareOf: coa, ID: ts(0)}, spi: 400, key: keyPool}
		if got := handle(t, c, 0, mnSrc, haVIP, r.bytes(t)); got.rep.Code != 0 {
			t.Fatalf("pool member %d: code %d", i, got.rep.Code)
		}
	}
	r := req1(ts(0))
	got := handle(t, c, 0, mnSrc, haVIP, r.bytes(t))
	if got.rep.Code != mip.CodeInsufficientResources {
		t.Fatalf("4th binding in a table of 3: code %d, want 130", got.rep.Code)
	}
	if c.table.Len() != 3 || c.table.Get(binding.AddrU32(mn1)) != nil {
		t.Fatalf("table changed on 130: %d live", c.table.Len())
	}
	for i := 0; i < 3; i++ {
		if e := c.table.Get(binding.AddrU32(netip.AddrFrom4([4]byte{192, 0, 2, byte(65 + i)}))); e == nil || e.Tombstone() {
			t.Fatalf("binding %d evicted", i)
		}
	}
	// Renewing an existing binding in a full table still works.
	rr := rq{Request: mip.Request{Lifetime: 300, HomeAddr: netip.AddrFrom4([4]byte{192, 0, 2, 65}), HomeAgent: haVIP, CareOf: coa, ID: ts(time.Second)}, spi: 400, key: keyPool}
	if got := handle(t, c, 0, mnSrc, haVIP, rr.bytes(t)); got.rep.Code != 0 {
		t.Fatalf("renewal in a full table: code %d", got.rep.Code)
	}
}

func TestNAIAssignsFromPool(t *testing.T) {
	c := newCore(t, 4)
	r := rq{Request: mip.Request{Lifetime: 300, HomeAgent: haVIP, CareOf: coa, ID: ts(0), NAI: []byte("mn2@example.net"),
		HomeAddr: netip.IPv4Unspecified()}, spi: 300, key: keyNAI}
	got := handle(t, c, 0, mnSrc, haVIP, r.bytes(t))
	if got.rep.Code != 0 || string(got.rep.NAI) != "mn2@example.net" {
		t.Fatalf("code %d NAI %q", got.rep.Code, got.rep.NAI)
	}
	if got.rep.HomeAddr != netip.MustParseAddr("192.0.2.129") {
		t.Fatalf("assigned %s, want the pool's first host 192.0.2.129", got.rep.HomeAddr)
	}
	// Asking again with 0.0.0.0 returns the same address.
	r.ID = ts(time.Second)
	if got = handle(t, c, 0, mnSrc, haVIP, r.bytes(t)); got.rep.HomeAddr != netip.MustParseAddr("192.0.2.129") || got.rep.Code != 0 {
		t.Fatalf("second request: %s code %d", got.rep.HomeAddr, got.rep.Code)
	}
}

func TestNonceReplay(t *testing.T) {
	c := newCore(t, 4)
	home := netip.MustParseAddr("192.0.2.11")
	r := rq{Request: mip.Request{Lifetime: 300, HomeAddr: home, HomeAgent: haVIP, CareOf: coa, ID: 0x12345678}, spi: 500, key: keyNon}
	got := handle(t, c, 0, mnSrc, haVIP, r.bytes(t))
	if got.rep.Code != mip.CodeIDMismatch || uint32(got.rep.ID) != 0x12345678 {
		t.Fatalf("first contact: code %d id %#x; want 133 with our nonce high and the node's low", got.rep.Code, got.rep.ID)
	}
	r.ID = got.rep.ID&^0xffffffff | 0x9abcdef0
	if got = handle(t, c, 0, mnSrc, haVIP, r.bytes(t)); got.rep.Code != 0 {
		t.Fatalf("echoing the nonce: code %d, want 0", got.rep.Code)
	}
}

func TestDiscards(t *testing.T) {
	c := newCore(t, 4)
	good := req1(ts(0)).bytes(t)
	// Unknown extension of type 0..127 before the authenticator: discard silently.
	unk := append(append([]byte{}, good[:mip.RequestLen]...), 99, 2, 0, 0)
	unk = mip.AppendMHAuth(unk, 0, 256, mip.NewHMACMD5(key1))
	cases := []struct {
		name   string
		pkt    []byte
		src    netip.AddrPort
		reason DropReason
	}{
		{"short", good[:10], mnSrc, DropTruncated},
		{"reply type", append([]byte{3}, good[1:]...), mnSrc, DropNotRequest},
		{"unknown critical extension", unk, mnSrc, DropUnknownExt},
		{"source port 0", good, netip.AddrPortFrom(coa, 0), DropBadSource},
	}
	for _, tc := range cases {
		if out, _, _ := sealed(c, 0, wall0, tc.src, haVIP, tc.pkt, make([]byte, 0, ReplyBufLen)); out != nil {
			t.Errorf("%s: got a reply, want a silent discard", tc.name)
		}
		if c.Stats.Drops[tc.reason] != 1 {
			t.Errorf("%s: drop counter %s = %d, want 1", tc.name, tc.reason, c.Stats.Drops[tc.reason])
		}
	}
	// A broken extension length: 134, unauthenticated.
	bad := append(append([]byte{}, good[:mip.RequestLen]...), mip.ExtMHAuth, 200, 1, 2)
	r := handle(t, c, 0, mnSrc, haVIP, bad)
	if r == nil || r.rep.Code != mip.CodePoorlyFormed || r.rep.MHAuth.Present {
		t.Fatalf("malformed extension: %+v, want 134 without authenticator", r)
	}
	if binary.BigEndian.Uint64(bad[16:24]) != r.rep.ID {
		t.Errorf("134 reply does not echo the identification")
	}
}

func TestRegistrationPathAllocatesNothing(t *testing.T) {
	c := newCore(t, 16)
	out := make([]byte, 0, ReplyBufLen)
	reqs := make([][]byte, 64)
	for i := range reqs {
		reqs[i] = req1(ts(0) + uint64(i)).bytes(t)
	}
	i := 0
	allocs := testing.AllocsPerRun(50, func() {
		reply, _, _ := sealed(c, int64(i), wall0, mnSrc, haVIP, reqs[i%len(reqs)], out)
		if reply == nil {
			t.Fatal("no reply")
		}
		i++
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per registration, want 0", allocs)
	}
	if c.Stats.Codes[0] == 0 {
		t.Fatal("nothing accepted: the test measured the wrong path")
	}
}

// BenchmarkRegistration measures the in-process registration path: parse,
// authenticate (HMAC-MD5), replay check, table insert/renew, reply with
// authenticator. Requests for 10,000 pool addresses, each with a fresh
// Identification, are prebuilt so that only the Home Agent's work is timed.
func BenchmarkRegistration(b *testing.B) {
	const nodes = 10000
	cfg := testConfig(nodes)
	cfg.Nodes[2].Pool = netip.MustParsePrefix("192.0.2.0/24")
	cfg.Nodes = cfg.Nodes[2:3] // one pool covering the home network
	cfg.Agent.HomeNetwork = netip.MustParsePrefix("192.0.0.0/16")
	cfg.Nodes[0].Pool = netip.MustParsePrefix("192.0.64.0/18")
	c, err := NewCore(cfg)
	if err != nil {
		b.Fatal(err)
	}
	n := b.N
	if n > 1<<21 {
		n = 1 << 21
	}
	const stride = mip.RequestLen + mip.MHAuthLen
	buf := make([]byte, 0, n*stride)
	h := mip.NewHMACMD5(keyPool)
	base := ts(0)
	for i := 0; i < n; i++ {
		a := uint32(192)<<24 | 64<<8 | uint32(i%nodes+1)
		r := mip.Request{Lifetime: 300, HomeAddr: binding.U32Addr(a), HomeAgent: haVIP, CareOf: coa, ID: base + uint64(i)}
		start := len(buf)
		buf, _ = r.AppendBinary(buf)
		buf = mip.AppendMHAuth(buf, start, 400, h)
	}
	out := make([]byte, 0, ReplyBufLen)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % n
		reply, _, _ := sealed(c, int64(i), wall0, mnSrc, haVIP, buf[j*stride:(j+1)*stride], out)
		if reply == nil {
			b.Fatal("no reply")
		}
	}
	b.StopTimer()
	if b.N <= n && c.Stats.Codes[0] != uint64(b.N) {
		b.Fatalf("accepted %d of %d", c.Stats.Codes[0], b.N)
	}
}

func TestHomeNetworkEdgesRefused(t *testing.T) {
	cfg := testConfig(4)
	cfg.Nodes[2].Pool = netip.MustParsePrefix("192.0.2.0/26") // includes the home network's .0
	c, err := NewCore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, home := range []string{"192.0.2.0"} {
		r := rq{Request: mip.Request{Lifetime: 300, HomeAddr: netip.MustParseAddr(home), HomeAgent: haVIP, CareOf: coa, ID: ts(0)}, spi: 400, key: keyPool}
		if got := handle(t, c, 0, mnSrc, haVIP, r.bytes(t)); got.rep.Code != mip.CodeAdminProhibited {
			t.Errorf("home address %s (the home network's own address): code %d, want 129", home, got.rep.Code)
		}
	}
}

func TestRenewalMovedOnlyWhenTheTunnelChanges(t *testing.T) {
	c := newCore(t, 4)
	if r := handle(t, c, 0, mnSrc, haVIP, req1(ts(0)).bytes(t)); !r.ch.Moved {
		t.Fatal("a new binding must be programmed")
	}
	if r := handle(t, c, 0, mnSrc, haVIP, req1(ts(time.Second)).bytes(t)); r.ch.Kind != Renewed || r.ch.Moved {
		t.Fatalf("renewal from the same care-of: %s moved=%v, want renewed without reprogramming", r.ch.Kind, r.ch.Moved)
	}
	rn := req1(ts(2 * time.Second))
	rn.CareOf = netip.MustParseAddr("198.51.100.99")
	if r := handle(t, c, 0, mnSrc, haVIP, rn.bytes(t)); r.ch.Kind != Renewed || !r.ch.Moved {
		t.Fatalf("renewal from a new care-of: %s moved=%v, want moved", r.ch.Kind, r.ch.Moved)
	}
}

// sealedVerdict is sealed's verdict: not a local, which Handle's Core
// would make escape (one allocation per call in the allocation tests).
var sealedVerdict Verdict

// sealed is Handle followed by Seal, as the agent sends a reply it does not
// hold: the reply's bytes (nil when there is none), its source address and
// the table change.
func sealed(c *Core, now int64, wall time.Time, src netip.AddrPort, dst netip.Addr, pkt, out []byte) ([]byte, netip.Addr, Change) {
	v := &sealedVerdict
	ch := c.Handle(now, wall, src, dst, pkt, v)
	if !v.Answer {
		return nil, v.From, ch
	}
	b, err := c.Seal(v, out)
	if err != nil {
		return nil, v.From, ch
	}
	return b, v.From, ch
}
