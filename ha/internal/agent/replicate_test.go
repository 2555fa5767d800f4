package agent

import (
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/internal/groupio"
	"github.com/hagent/hagent/ha/internal/hasync"
	"github.com/hagent/hagent/ha/mip"
)

// replHarness drives one group member's registrar with scripted events and
// fake time: no socket, no sleep. The mobile node's replies and the
// messages for the peer are the registrar's actions, collected; the only
// peer is a hasync Machine in the test that hears what the member sent it
// only when the test delivers it, and answers as events.
type replHarness struct {
	scripted
	peer    *hasync.Machine
	peerTab *binding.Table
	peerCfg hasync.Config // the peer's configuration (peerRestart)
	out     []hasync.Action
	id      uint64 // last request Identification
}

var peerAddr = netip.MustParseAddr("127.0.0.3")

// replWithKernel builds the harness's member with a (fake) kernel datapath:
// its writes are then staged until the kernel answered (stage.go).
var replWithKernel bool

// Every rule of "what accepted promises" holds the same when the member
// programs a kernel first: the rule tests again, on that shape.
func TestAcceptedRulesWithAKernel(t *testing.T) {
	replWithKernel = true
	defer func() { replWithKernel = false }()
	for _, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"ReplyAfterPeerAck", TestReplyAfterPeerAck},
		{"NoAckWhilePeerUpIsDenied", TestNoAckWhilePeerUpIsDenied},
		{"SilentPeerDoesNotStopService", TestSilentPeerDoesNotStopService},
		{"RetransmissionOfHeldRequestIsAnsweredOnce", TestRetransmissionOfHeldRequestIsAnsweredOnce},
		{"NoPeerUp", TestNoPeerUp},
		{"HoldQueueFull", TestHoldQueueFull},
		{"RequireReplicationReloads", TestRequireReplicationReloads},
		{"HeldDenialAllocatesNothing", TestHeldDenialAllocatesNothing},
		{"PeerDeathDecidesHeldRepliesAtOnce", TestPeerDeathDecidesHeldRepliesAtOnce},
		{"UpdateBeforeReply", TestUpdateBeforeReply},
		{"ClearBindingReachesTheGroup", TestClearBindingReachesTheGroup},
		{"ReloadRevocationReplicates", TestReloadRevocationReplicates},
		{"ReloadRevocationHeldReply", TestReloadRevocationHeldReply},
	} {
		t.Run(tc.name, tc.f)
	}
}

func newReplHarness(t *testing.T, require bool) *replHarness {
	t.Helper()
	return newReplHarnessWith(t, require, nil)
}

// newReplHarnessWith lets tune change the configuration before the
// registrar is built.
func newReplHarnessWith(t *testing.T, require bool, tune func(*config.Config)) *replHarness {
	t.Helper()
	cfg := loopbackConfig(t, 8)
	cfg.Group = config.Group{Enabled: true, Port: 4435, Peers: []netip.Addr{peerAddr},
		Key: []byte("group-key-0123456789"), KeyID: 1, AckTimeout: 20 * time.Millisecond, MaxRetries: 3,
		AntiEntropyInterval: time.Hour, AckBeforeReply: true, RequireReplication: require}
	cfg.Agent.AgentID = 1
	if tune != nil {
		tune(cfg)
	}
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	h := &replHarness{scripted: scripted{t: t, a: a, now: int64(time.Second)}, id: mip.Timestamp(time.Now()), peerTab: binding.New(8, 8)}
	m, err := a.newGroupMachine()
	if err != nil {
		t.Fatal(err)
	}
	a.grp = &group{m: m, mode: "group", peers: cfg.Group.Peers}
	a.newRegistrar()
	h.r = a.reg
	if replWithKernel {
		// As a member with a datapath: the kernel is asked before each
		// write (it takes everything here).
		a.dpl = &dataplane{dp: newFakeDP(), active: true, ifname: noIf}
		h.r.kernel = true
	}
	a.core.SetServing(true) // as once the table is initialized
	hc := hasync.Config{ID: 2, Addr: peerAddr, Session: 7, Keys: []hasync.Key{{ID: 1, Secret: cfg.Group.Key}},
		SendKey: 1, Peers: []netip.Addr{cfg.Agent.Address}, MaxLifetime: time.Duration(cfg.Agent.MaxLifetime) * time.Second,
		TombstoneTTL: time.Hour}
	if cfg.Group.Heartbeat {
		hc.HeartbeatInterval = cfg.Group.HeartbeatInterval
	}
	h.peerCfg = hc
	if h.peer, err = hasync.New(hc, h.peerTab); err != nil {
		t.Fatal(err)
	}
	return h
}

// peerSays delivers the peer's output to the member.
func (h *replHarness) peerSays(acts []hasync.Action) {
	for _, act := range acts {
		if act.Kind != hasync.ActMulticast && act.Kind != hasync.ActUnicast {
			continue
		}
		h.handle(Event{Kind: EvGroup, Src: peerAddr, TTL: hasync.RequiredTTL, Pkt: act.Pkt})
	}
}

// peerUp makes the member hear the peer: its table request at start, which
// the member answers with a session challenge; the peer's answer proves
// its session (hasync spec §3.1).
func (h *replHarness) peerUp() {
	h.out = h.peer.Start(h.now, h.out[:0])
	h.peerSays(h.out)
	h.toPeer(true)
	if h.a.grp.m.UpPeers() != 1 {
		h.t.Fatalf("peer not up after its first message: %d up", h.a.grp.m.UpPeers())
	}
}

// peerAcking brings the peer up and has it acknowledge one registration:
// from then on its silence counts (hasync AckingPeers).
func (h *replHarness) peerAcking() {
	h.t.Helper()
	h.peerUp()
	h.send(h.request(false))
	h.toPeer(true)
	h.wantReply(mip.CodeAccepted)
	if h.a.grp.m.AckingPeers() != 1 {
		h.t.Fatal("the peer acknowledged but does not count as acking")
	}
}

// toPeer takes what the member sent the peer, and what it sends while the
// peer's answers are delivered; deliver: the peer processes it and its
// answers (update acks) go back to the member; else it is lost. It returns
// how many messages the member sent.
func (h *replHarness) toPeer(deliver bool) int {
	n := 0
	for len(h.toPeerQ) > 0 {
		msg := h.toPeerQ[0]
		h.toPeerQ = h.toPeerQ[1:]
		n++
		if deliver {
			h.out = h.peer.Receive(h.now, h.a.cfg.Agent.Address, hasync.RequiredTTL, msg, h.out[:0])
			h.peerSays(h.out)
		}
	}
	return n
}

// request builds a registration of the configured node (127.0.0.10) with a
// fresh Identification (or the previous one: a retransmission).
func (h *replHarness) request(again bool) []byte {
	if !again {
		h.id++
	}
	r := rq{Request: mip.Request{Lifetime: 300, HomeAddr: h.a.cfg.Nodes[0].HomeAddress, HomeAgent: h.a.cfg.Agent.VirtualAddress,
		CareOf: coa, ID: h.id}, spi: 256, key: key1}
	return r.bytes(h.t)
}

// send hands one datagram to the registrar as a batch of one.
func (h *replHarness) send(pkt []byte) { h.batch(pkt) }

// reply is the node's next reply; nil when none was sent.
func (h *replHarness) reply() *mip.Reply {
	h.t.Helper()
	if len(h.sent) == 0 {
		return nil
	}
	b := h.sent[0]
	h.sent = h.sent[1:]
	r := verifyReply(h.t, b, key1)
	if r.ID != h.id {
		h.t.Fatalf("reply for id %#x, want %#x", r.ID, h.id)
	}
	return &r
}

func (h *replHarness) wantReply(code mip.Code) {
	h.t.Helper()
	r := h.reply()
	if r == nil {
		h.t.Fatalf("no reply, want code %d", code)
	}
	if r.Code != code {
		h.t.Fatalf("reply code %d, want %d", r.Code, code)
	}
	if !code.Accepted() && r.Lifetime != 0 {
		h.t.Fatalf("denial with lifetime %d, want 0", r.Lifetime)
	}
}

func (h *replHarness) wantNoReply() {
	h.t.Helper()
	if r := h.reply(); r != nil {
		h.t.Fatalf("reply code %d sent, want it held", r.Code)
	}
}

// waitOver lets the hold's wait (2 × ack_timeout) run out: the clock moves
// on by that much and the timer fires.
func (h *replHarness) waitOver() {
	h.now += h.r.hold.wait
	h.handle(Event{Kind: EvTimer})
}

func (h *replHarness) live() bool {
	e := h.a.core.Table().Get(binding.AddrU32(h.a.cfg.Nodes[0].HomeAddress))
	return e != nil && !e.Tombstone() && e.ID == h.id
}

// counter is a group or hold counter as `show redundancy` names it.
func counter(t *testing.T, a *Agent, key string) uint64 {
	t.Helper()
	g := console.Redundancy{Counters: append(groupCounters(a.grp.m.Counters(), groupio.Stats{}, 0), holdCounters(a.hold))}
	for _, c := range g.Flat() {
		if c.Key == key {
			return c.Value
		}
	}
	t.Fatalf("show redundancy has no counter %q", key)
	return 0
}

func TestReplyAfterPeerAck(t *testing.T) {
	h := newReplHarness(t, false)
	h.peerAcking()
	h.send(h.request(false))
	h.wantNoReply()
	if h.toPeer(true) == 0 {
		t.Fatal("the member sent the peer nothing")
	}
	h.wantReply(mip.CodeAccepted)
	// Two: peerAcking's registration waited for the peer's first ack too.
	if q := h.a.hold; q.Acked != 2 || q.DeniedNoAck != 0 {
		t.Fatalf("acked %d denied %d", q.Acked, q.DeniedNoAck)
	}
}

// Issue 7: the wait ends with no ack while a peer that has been
// acknowledging still counts as up (this member is cut off; the peer is not
// yet declared dead): the node is told 130, not "accepted". The binding
// stays; a retransmission is re-announced and accepted once a peer
// acknowledges it.
func TestNoAckWhilePeerUpIsDenied(t *testing.T) {
	for _, require := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "require_replication"}[require], func(t *testing.T) {
			h := newReplHarness(t, require)
			h.peerAcking()
			h.send(h.request(false))
			h.toPeer(false) // lost: the peer is cut off
			h.wantNoReply()
			h.waitOver()
			h.wantReply(mip.CodeInsufficientResources)
			if !h.live() {
				t.Fatal("the denied binding left the table")
			}
			if s := h.a.core.Stats; s.Codes[mip.CodeAccepted] != 1 || s.Codes[mip.CodeInsufficientResources] != 1 {
				t.Fatalf("reply codes: 0: %d, 130: %d", s.Codes[0], s.Codes[130])
			}
			if got := counter(t, h.a, "replies.denied_no_ack"); got != 1 {
				t.Fatalf("denied counter %d", got)
			}
			// The node retransmits the same request (the denial was lost):
			// held again, and the binding is announced again.
			h.send(h.request(true))
			h.wantNoReply()
			if h.toPeer(true) == 0 {
				t.Fatal("a retransmission was not announced again")
			}
			h.wantReply(mip.CodeAccepted)
			// Once acknowledged, another retransmission is acknowledged at once.
			h.send(h.request(true))
			h.toPeer(true)
			h.wantReply(mip.CodeAccepted)
		})
	}
}

// A peer that proved its session but never acknowledges (a member that
// restarted and died again, or listens only) does not stop the service by
// default: the reply waits for its ack (it may be a member that just
// started, hasync AwaitedPeers), and when none came it is accepted alone,
// counted. Once an update to it has run out of retries its silence is
// known and replies are no longer held for it; its next ack makes it count
// again. require_replication holds it, and refuses when no ack came.
func TestSilentPeerDoesNotStopService(t *testing.T) {
	for _, require := range []bool{false, true} {
		h := newReplHarness(t, require)
		h.peerUp()
		h.send(h.request(false))
		h.toPeer(false)
		h.wantNoReply()
		h.waitOver()
		if require {
			h.wantReply(mip.CodeInsufficientResources)
			continue
		}
		h.wantReply(mip.CodeAccepted)
		if got := counter(t, h.a, "replies.accepted_unreplicated"); got != 1 {
			t.Fatalf("accepted_unreplicated %d, want 1", got)
		}
		for end := h.now + int64(5*time.Second); h.a.grp.m.AwaitedPeers() != 0; {
			if h.now > end {
				t.Fatal("the silent peer still awaited 5 s after the update")
			}
			h.now = max(h.now+1, h.r.NextDeadline())
			h.handle(Event{Kind: EvTimer})
			h.toPeer(false)
		}
		held := h.a.hold.Held
		h.send(h.request(false))
		h.wantReply(mip.CodeAccepted)
		if got := counter(t, h.a, "replies.accepted_unreplicated"); got != 2 {
			t.Fatalf("accepted_unreplicated %d, want 2", got)
		}
		if h.a.hold.Held != held {
			t.Fatal("a reply held for a peer whose update ran out of retries")
		}
		// Once the peer acknowledges an update, its silence counts again.
		h.toPeer(true)
		h.send(h.request(false))
		h.wantNoReply()
		h.toPeer(true)
		h.wantReply(mip.CodeAccepted)
	}
}

// A retransmission while the first reply is still held gets no second answer.
func TestRetransmissionOfHeldRequestIsAnsweredOnce(t *testing.T) {
	h := newReplHarness(t, false)
	h.peerAcking()
	req := h.request(false)
	h.send(req)
	h.send(req)
	h.wantNoReply()
	h.toPeer(true)
	h.wantReply(mip.CodeAccepted)
	h.wantNoReply()
}

// Every peer gone: by default the member serves alone and counts it; with
// require_replication it refuses, at once or when a held wait ends.
func TestNoPeerUp(t *testing.T) {
	t.Run("default serves alone", func(t *testing.T) {
		h := newReplHarness(t, false)
		h.send(h.request(false))
		h.wantReply(mip.CodeAccepted)
		// An acking peer that leaves while a reply is held: the wait ends
		// alone.
		h.peerAcking()
		h.send(h.request(false))
		h.toPeer(false)
		h.out = h.peer.Leave(h.now, h.out[:0])
		h.peerSays(h.out)
		h.waitOver()
		h.wantReply(mip.CodeAccepted)
		// Two: with no peer, and the one whose wait ended after the peer
		// left (peerAcking's waited for the peer's first ack).
		if got := counter(t, h.a, "replies.accepted_unreplicated"); got != 2 {
			t.Fatalf("accepted_unreplicated %d, want 2", got)
		}
	})
	t.Run("require_replication refuses", func(t *testing.T) {
		h := newReplHarness(t, true)
		h.send(h.request(false))
		h.wantReply(mip.CodeInsufficientResources)
		if !h.live() {
			t.Fatal("the denied binding left the table")
		}
		if got := counter(t, h.a, "replies.denied_unreplicated"); got != 1 {
			t.Fatalf("denied_unreplicated %d, want 1", got)
		}
		h.peerUp()
		h.send(h.request(false))
		h.toPeer(true)
		h.wantReply(mip.CodeAccepted) // acknowledged
		h.send(h.request(false))
		h.toPeer(false)
		h.out = h.peer.Leave(h.now, h.out[:0])
		h.peerSays(h.out)
		h.waitOver()
		h.wantReply(mip.CodeInsufficientResources)
		if a := counter(t, h.a, "replies.accepted_unreplicated"); a != 0 {
			t.Fatalf("accepted_unreplicated %d under require_replication", a)
		}
	})
}

// The hold queue full: sent at once by default (as before), denied under
// require_replication.
func TestHoldQueueFull(t *testing.T) {
	for _, require := range []bool{false, true} {
		h := newReplHarness(t, require)
		h.peerAcking()
		q := h.a.hold
		to := netip.MustParseAddrPort("127.0.0.1:9")
		x := &Verdict{Answer: true, From: peerAddr, node: -1}
		for i := 0; i < holdSlots; i++ {
			if !q.hold(h.now, uint32(0x0a000000+i), 0, 1, x, to, 0) {
				t.Fatal("hold refused with free slots")
			}
		}
		h.send(h.request(false))
		want := mip.CodeAccepted
		if require {
			want = mip.CodeInsufficientResources
		}
		h.wantReply(want)
		if q.Overflow != 1 || (require && q.DeniedFull != 1) {
			t.Fatalf("require=%v: overflow %d denied %d", require, q.Overflow, q.DeniedFull)
		}
	}
}

// The policy follows a reload (SIGHUP): require_replication is read at each
// decision.
func TestRequireReplicationReloads(t *testing.T) {
	h := newReplHarness(t, false)
	cfg := *h.a.cfg
	cfg.Group.RequireReplication = true
	if err := h.reload(&cfg); err != nil {
		t.Fatalf("reload of require_replication refused: %v", err)
	}
	h.send(h.request(false))
	h.wantReply(mip.CodeInsufficientResources)
	cfg2 := cfg
	cfg2.Group.AckBeforeReply = false
	cfg2.Group.RequireReplication = false
	if err := h.reload(&cfg2); err == nil || !strings.Contains(err.Error(), "[group]") {
		t.Fatalf("reload of ack_before_reply: %v, want a refusal naming [group]", err)
	}
}

// The held-reply path and its denial allocate nothing.
func TestHeldDenialAllocatesNothing(t *testing.T) {
	h := newReplHarness(t, false)
	h.peerAcking()
	reqs := make([][]byte, 64)
	for i := range reqs {
		reqs[i] = h.request(false)
	}
	i := 0
	h.discard = true // what the loop would send is not collected
	allocs := testing.AllocsPerRun(50, func() {
		h.send(reqs[i%len(reqs)])
		i++
		h.waitOver()
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per held and denied registration", allocs)
	}
	if h.a.hold.DeniedNoAck == 0 {
		t.Fatal("nothing denied: the test measured the wrong path")
	}
}
