package agent

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/mip"
)

// A [[node]] removed by SIGHUP takes its binding with it at once: before,
// the binding stayed until it expired and the node's own de-registration
// was answered 129 with the binding still routed.
func TestReloadRevokesRemovedNode(t *testing.T) {
	cfg := loopbackConfig(t, 8)
	other := cfg.Nodes[0]
	other.Name, other.HomeAddress, other.Key = "other", netip.MustParseAddr("127.0.0.11"), []byte("other-node-key-0")
	cfg.Nodes = append(cfg.Nodes, other)
	a, stop := startAgent(t, cfg)
	defer stop()

	mn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer mn.Close()
	home := cfg.Nodes[0].HomeAddress
	id := mip.Timestamp(time.Now())
	ask := func(lifetime uint16) mip.Reply {
		t.Helper()
		id++
		r := rq{Request: mip.Request{Lifetime: lifetime, HomeAddr: home, HomeAgent: cfg.Agent.Address, CareOf: coa, ID: id}, spi: 256, key: key1}
		if _, err := mn.WriteToUDP(r.bytes(t), &net.UDPAddr{IP: cfg.Agent.Address.AsSlice(), Port: int(cfg.Agent.ListenPort)}); err != nil {
			t.Fatal(err)
		}
		_ = mn.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 1500)
		n, err := mn.Read(buf)
		if err != nil {
			t.Fatalf("no reply: %v", err)
		}
		var rep mip.Reply
		if err := rep.UnmarshalBinary(buf[:n]); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	bindings := func() *console.Bindings {
		t.Helper()
		resp, err := console.Call(cfg.Agent.ConsoleSocket, console.Request{Cmd: "show bindings"}, 3*time.Second)
		if err != nil || resp.Bindings == nil {
			t.Fatalf("show bindings: %v %+v", err, resp)
		}
		return resp.Bindings
	}
	if rep := ask(300); rep.Code != mip.CodeAccepted {
		t.Fatalf("register: code %d", rep.Code)
	}
	if b := bindings(); b.Live != 1 {
		t.Fatalf("after registration: %d live", b.Live)
	}

	removed := *cfg
	removed.Nodes = []config.Node{other}
	if err := a.Reload(&removed); err != nil {
		t.Fatal(err)
	}
	if b := bindings(); b.Live != 0 || b.Tombs != 1 {
		t.Fatalf("after removing the node by reload: %d live, %d tombstones; want 0 and 1", b.Live, b.Tombs)
	}
	// The removed node's own de-registration: 129 (no association any
	// more), and the binding stays gone.
	if rep := ask(0); rep.Code != mip.CodeAdminProhibited {
		t.Fatalf("de-registration of the removed node: code %d, want 129", rep.Code)
	}
	if b := bindings(); b.Live != 0 {
		t.Fatalf("after the removed node's de-registration: %d live", b.Live)
	}
	resp, err := console.Call(cfg.Agent.ConsoleSocket, console.Request{Cmd: "show stats"}, 3*time.Second)
	if err != nil || resp.Stats == nil {
		t.Fatalf("show stats: %v %+v", err, resp)
	}
	if got := revokedCounter(t, resp.Stats); got != 1 {
		t.Fatalf("revoked counter %d, want 1", got)
	}
	_ = a
}

func revokedCounter(t *testing.T, s *console.Stats) uint64 {
	t.Helper()
	for _, c := range s.General {
		if strings.HasPrefix(c.Name, "revoked by reload") {
			return c.Value
		}
	}
	t.Fatal("show stats has no revoked counter")
	return 0
}

// What a reload revokes, and what it does not (revoke.go).
func TestReloadRevocationRules(t *testing.T) {
	pool70 := netip.MustParseAddr("192.0.2.70")
	register := func(t *testing.T, c *Core) (naiHome netip.Addr) {
		t.Helper()
		if r := handle(t, c, 0, mnSrc, haVIP, req1(ts(0)).bytes(t)); r.rep.Code != 0 {
			t.Fatalf("register mn1: %d", r.rep.Code)
		}
		p := rq{Request: mip.Request{Lifetime: 300, HomeAddr: pool70, HomeAgent: haVIP, CareOf: coa, ID: ts(0)}, spi: 400, key: keyPool}
		if r := handle(t, c, 0, mnSrc, haVIP, p.bytes(t)); r.rep.Code != 0 {
			t.Fatalf("register pool address: %d", r.rep.Code)
		}
		n := rq{Request: mip.Request{Lifetime: 300, HomeAgent: haVIP, CareOf: coa, ID: ts(0), NAI: []byte("mn2@example.net"), HomeAddr: netip.IPv4Unspecified()}, spi: 300, key: keyNAI}
		r := handle(t, c, 0, mnSrc, haVIP, n.bytes(t))
		if r.rep.Code != 0 {
			t.Fatalf("register NAI node: %d", r.rep.Code)
		}
		return r.rep.HomeAddr
	}
	for _, tc := range []struct {
		name   string
		change func(cfg *config.Config)
		gone   []string // node names whose binding is revoked
	}{
		{"nothing changed", func(*config.Config) {}, nil},
		{"mn1 removed", func(c *config.Config) { c.Nodes = c.Nodes[1:] }, []string{"mn1"}},
		{"mn1 renamed", func(c *config.Config) { c.Nodes[0].Name = "mn-one" }, []string{"mn1"}},
		{"mn1 home_address changed", func(c *config.Config) { c.Nodes[0].HomeAddress = netip.MustParseAddr("192.0.2.13") }, []string{"mn1"}},
		{"mn1 new key and SPI", func(c *config.Config) { c.Nodes[0].Key, c.Nodes[0].SPI = []byte("rotated-key-0123"), 257 }, nil},
		{"mn1 lifetime and replay", func(c *config.Config) { c.Nodes[0].MaxLifetime, c.Nodes[0].Replay = 60, "nonce" }, nil},
		{"pool narrowed, home still inside", func(c *config.Config) { c.Nodes[2].Pool = netip.MustParsePrefix("192.0.2.64/28") }, nil},
		{"pool narrowed, home outside", func(c *config.Config) { c.Nodes[2].Pool = netip.MustParsePrefix("192.0.2.64/30") }, []string{"pool"}},
		{"pool address given to a new node", func(c *config.Config) {
			c.Nodes = append(c.Nodes, config.Node{Name: "fixed70", HomeAddress: pool70, SPI: 700, Key: key1, Algorithm: "hmac-md5", Replay: "timestamp"})
		}, []string{"pool"}},
		{"NAI node's NAI changed", func(c *config.Config) { c.Nodes[1].NAI = "someone-else@example.net" }, []string{"nai"}},
		{"NAI node removed", func(c *config.Config) { c.Nodes = append(c.Nodes[:1], c.Nodes[2:]...) }, []string{"nai"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCore(t, 8)
			naiHome := register(t, c)
			homes := map[string]netip.Addr{"mn1": mn1, "pool": pool70, "nai": naiHome}
			cfg := testConfig(8)
			tc.change(cfg)
			if err := c.Reload(cfg); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			n := c.Revoke(int64(time.Second), func(ch Change, node, why string) {
				if ch.Kind != Revoked || ch.Entry.Home != binding.AddrU32(homes[node]) {
					t.Errorf("revocation of %s: %s of %s", node, ch.Kind, binding.U32Addr(ch.Entry.Home))
				}
				got[node] = why
			})
			if n != len(tc.gone) || len(got) != len(tc.gone) {
				t.Fatalf("revoked %d %v, want %v", n, got, tc.gone)
			}
			for name, home := range homes {
				_, revoked := got[name]
				e := c.table.Get(binding.AddrU32(home))
				if e == nil {
					t.Fatalf("%s: binding of %s vanished without a tombstone", name, home)
				}
				if revoked == e.Tombstone() {
					continue
				}
				t.Errorf("%s (%s): tombstone %v, revoked %v", name, home, e.Tombstone(), revoked)
			}
			for _, name := range tc.gone {
				if _, ok := got[name]; !ok {
					t.Errorf("%s not revoked", name)
				}
			}
			if c.Stats.Revoked != uint64(len(tc.gone)) {
				t.Errorf("Stats.Revoked %d", c.Stats.Revoked)
			}
			// A second Revoke has nothing left to do.
			if n := c.Revoke(int64(2*time.Second), nil); n != 0 {
				t.Errorf("second Revoke removed %d", n)
			}
		})
	}
}

// In a group the revocation is the group's: a de-registration versioned
// above the binding reaches the peer, whose table then holds the tombstone
// too, and the peer's old live record loses against it in a merge.
func TestReloadRevocationReplicates(t *testing.T) {
	h := newReplHarness(t, false)
	h.peerAcking()
	home := binding.AddrU32(h.a.cfg.Nodes[0].HomeAddress)
	live := h.peerTab.Get(home)
	if live == nil || live.Tombstone() {
		t.Fatalf("the peer does not hold the binding before the reload: %+v", live)
	}
	old := *live

	cfg := *h.a.cfg
	cfg.Nodes = []config.Node{cfg.Nodes[0]}
	cfg.Nodes[0].Name, cfg.Nodes[0].HomeAddress = "other", netip.MustParseAddr("127.0.0.11")
	if err := h.reload(&cfg); err != nil {
		t.Fatal(err)
	}
	e := h.a.core.table.Get(home)
	if e == nil || !e.Tombstone() || e.ID <= old.ID {
		t.Fatalf("member after the reload: %+v, want a tombstone above id %#x", e, old.ID)
	}
	if h.toPeer(true) == 0 {
		t.Fatal("the revocation was not sent to the peer")
	}
	p := h.peerTab.Get(home)
	if p == nil || !p.Tombstone() || p.ID != e.ID {
		t.Fatalf("peer after the revocation: %+v, want the tombstone id %#x", p, e.ID)
	}
	// The peer's old live record (as a retransmission or a repair would
	// carry it) does not bring the binding back.
	if _, err := h.a.grp.m.Register(h.now, old, nil); err == nil {
		t.Fatal("the old live record was accepted over the revocation")
	}
	if e := h.a.core.table.Get(home); e == nil || !e.Tombstone() {
		t.Fatalf("binding back after the old record: %+v", e)
	}
	if got := revokedCounter(t, h.a.showStats()); got != 1 {
		t.Fatalf("revoked counter %d, want 1", got)
	}
}

// A reply held for the peer's acknowledgement must not say "accepted" for
// a binding a reload revoked meanwhile: a denial (129) when the node still
// has a key here (its entry renamed), nothing when it has none (removed).
func TestReloadRevocationHeldReply(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(n []config.Node) []config.Node
		want   mip.Code // 0: no reply at all
	}{
		{"renamed", func(n []config.Node) []config.Node { n[0].Name = "renamed"; return n }, mip.CodeAdminProhibited},
		{"removed", func(n []config.Node) []config.Node {
			o := n[0]
			o.Name, o.HomeAddress = "other", netip.MustParseAddr("127.0.0.11")
			return []config.Node{o}
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newReplHarness(t, false)
			h.peerAcking()
			h.send(h.request(false))
			h.wantNoReply() // held for the peer's ack
			cfg := *h.a.cfg
			cfg.Nodes = tc.change(append([]config.Node(nil), cfg.Nodes...))
			if err := h.reload(&cfg); err != nil {
				t.Fatal(err)
			}
			if tc.want != 0 {
				h.wantReply(tc.want)
			}
			h.toPeer(true) // the peer acknowledges the registration and the revocation
			h.waitOver()
			if tc.want == 0 {
				h.wantNoReply()
			} else if r := h.reply(); r != nil {
				t.Fatalf("a second reply, code %d", r.Code)
			}
		})
	}
}
