package hasync

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
)

// Config configures a Machine. Zero durations and counts take the defaults
// of the spec (§5.7).
type Config struct {
	ID      uint32     // this member's agent id (non-zero, unique in the group)
	Addr    netip.Addr // this member's IPv4 address on the home LAN (sent in Home Agent lists)
	Session uint32     // random, non-zero, new at every start (crypto/rand in the caller)
	Keys    []Key      // group keys, the same on every member
	SendKey uint8      // key id used to send
	// Peers is the static unicast peer list. Empty: group messages go to
	// the multicast group (ActMulticast); else one ActUnicast per peer.
	Peers []netip.Addr

	AckTimeout     time.Duration // 250 ms
	MaxRetries     int           // 5
	RequestTimeout time.Duration // 1 s
	StallTimeout   time.Duration // 2 s
	AloneAttempts  int           // 3
	Window         int           // 32
	MaxDownloads   int           // 4
	DigestPeriod   time.Duration // 10 s
	DeadInterval   time.Duration // 35 s
	DigestGuard    time.Duration // 2 s
	TombstoneTTL   time.Duration // 1 h
	MaxLifetime    time.Duration // longest lifetime the agent grants; New refuses TombstoneTTL < MaxLifetime (0: not checked)
	MaxPending     int           // 65536
	MaxRepair      int           // repair chunks per digest received, 128
	// MaxPeers bounds the Home Agent list: other members this one admits
	// (group.max_members − 1; at most MaxPeers, the default). Messages
	// from further agent ids are refused and counted (PeersRejected).
	MaxPeers int
	// UnackedPending bounds the updates outstanding to a peer that has not
	// acknowledged one since it came up (64): a member that never
	// acknowledges cannot fill MaxPending for the others.
	UnackedPending int
	// Entropy is random, new at every start (crypto/rand in the caller):
	// session challenge nonces are derived from it. 0: from Session.
	Entropy uint64

	// Admit judges the home address of every record received from a peer
	// against this member's own configuration: "" admits it, anything else
	// is why it is refused (logged; return a constant). nil admits every
	// address except this member's and the group members' own (admit.go).
	Admit func(home uint32) string
	// HeartbeatInterval > 0 sends a heartbeat that often (jittered) and
	// declares a peer that sends them down after HeartbeatMultiplier (3)
	// of its intervals without a message (heartbeat.go). 0: no heartbeat.
	HeartbeatInterval   time.Duration
	HeartbeatMultiplier int
	HeartbeatDemand     bool  // start in demand mode (SetHeartbeatDemand)
	HeartbeatPriority   uint8 // election priority carried (SetHeartbeatPriority)

	Logger *slog.Logger // nil: discard
}

func (c *Config) defaults() {
	def := func(p *time.Duration, d time.Duration) {
		if *p <= 0 {
			*p = d
		}
	}
	defi := func(p *int, d int) {
		if *p <= 0 {
			*p = d
		}
	}
	def(&c.AckTimeout, 250*time.Millisecond)
	def(&c.RequestTimeout, time.Second)
	def(&c.StallTimeout, 2*time.Second)
	def(&c.DigestPeriod, 10*time.Second)
	def(&c.DeadInterval, 35*time.Second)
	def(&c.DigestGuard, 2*time.Second)
	def(&c.TombstoneTTL, time.Hour)
	defi(&c.MaxRetries, 5)
	defi(&c.AloneAttempts, 3)
	defi(&c.Window, 32)
	defi(&c.MaxDownloads, 4)
	defi(&c.MaxPending, 65536)
	defi(&c.MaxRepair, 128)
	defi(&c.MaxPeers, MaxPeers)
	defi(&c.UnackedPending, 64)
	defi(&c.HeartbeatMultiplier, 3)
}

// ActionKind says what the caller must do with an Action.
type ActionKind uint8

const (
	// ActMulticast: send Pkt to the group (multicast address, port, TTL 255).
	ActMulticast ActionKind = iota + 1
	// ActUnicast: send Pkt to To (group port, TTL 255).
	ActUnicast
	// ActBinding: Entry was set in the table from the group (a peer's
	// registration): the datapath follows it when this member is active.
	ActBinding
	// ActUnbind: the live binding for Entry.Home is gone (de-registered by a
	// peer, or expired): remove its routes / proxy ARP.
	ActUnbind
	// ActInitialized: the table is initialized from the group (or this
	// member is alone): VRRP/HSRP may now take mastership.
	ActInitialized
	// ActAcked: a peer acknowledged this member's update for Entry.Home at
	// version (Entry.ID, Entry.Origin): the write now survives this
	// member's death. The agent may hold a registration reply until then.
	ActAcked
	// ActPeerDown: the peer at To fell silent for its heartbeat detection
	// time and is down: no acknowledgement from it is waited for any more.
	ActPeerDown
	// ActPeerAlive: the peer at To, declared down by the heartbeat, spoke
	// again in the same session: it was alive all along.
	ActPeerAlive
)

// Action is one thing the caller does after a Machine call. Pkt aliases a
// buffer owned by the Machine: send it before the next call.
type Action struct {
	Kind  ActionKind
	To    netip.Addr
	Pkt   []byte
	Entry binding.Entry
}

// Counters are the group protocol's cumulative counters (spec §6; names
// follow CISCO-MOBILE-IP-MIB cmiHaRedun*).
type Counters struct {
	UpdatesSent, UpdatesFailed, UpdatesTotal, UpdatesReceived                 uint64
	UpdateAcksSent, UpdateAcksReceived                                        uint64
	TableRequestsSent, TableRequestsFailed, TableRequestsTotal                uint64
	TableRepliesReceived, TableRepliesDropped, TableAcksSent                  uint64
	RequestsReceived, RepliesSent, RepliesFailed, RepliesTotal                uint64
	ReplyAcksReceived, ReplyAcksDropped                                       uint64
	SecViolations, BadTTL, BadAuth, UnknownKey, Replay, Malformed             uint64
	DigestsSent, DigestsReceived, DigestMismatches, RepairsSent, RepairsRecvd uint64
	Superseded, TableFull, Downloads, PeersRejected                           uint64
	LeavesReceived                                                            uint64
	// RecordsRefused: received records whose home address this member's
	// configuration does not admit (admit.go). StaleByFloor: live records
	// (and local registrations) refused because a tombstone for a home no
	// longer held may be newer (binding.Table.Covered). UpdatesRefused: our
	// updates a peer answered with AckRefused.
	RecordsRefused, StaleByFloor, UpdatesRefused uint64
	// Session proof (spec §3.1): messages dropped because their session is
	// not proven yet, challenges sent, responses sent, sessions proven.
	Unproven, ChallengesSent, ResponsesSent, SessionsProven uint64
	// PendingRefused: updates not tracked for a peer that has not
	// acknowledged since it came up and already has UnackedPending outstanding.
	PendingRefused                                        uint64
	HeartbeatsSent, HeartbeatsReceived, PeersDetectedDown uint64
}

// PeerInfo describes one member of the Home Agent list (hactl show redundancy).
type PeerInfo struct {
	ID          uint32
	Addr        netip.Addr
	LastHeard   int64 // monotonic ns, 0 never
	Up          bool
	Initialized bool
	InSync      bool // last digest exchange found equal tables
	Acking      bool // acknowledged an update of ours since it came up, and none has run out of retries since (AckingPeers)
	Outstanding int  // updates waiting for its ack
	Proven      bool // its current session answered our challenge (spec §3.1)
	// AuthFailures: messages from its address that failed authentication
	// (a member with another group key); AuthFailedAt: the last one.
	AuthFailures uint64
	AuthFailedAt int64
}

// MaxPeers bounds the Home Agent list (a Home Agent List carries 100).
const MaxPeers = MaxHAs - 1

type peer struct {
	id          uint32
	addr        netip.Addr
	heard       int64
	up          bool
	init        bool
	inSync      bool
	needDigest  bool
	digestAt    int64 // last digest sent to it alone (rate limit: resyncDigestGap)
	warnedAt    int64 // last "not acknowledged" warning (rate limit: one per 10 s per peer)
	outstanding int
	rw          ReplayWindow
	nonce       uint64 // outstanding session challenge, 0: none
	chalAt      int64  // last challenge sent
	answered    uint64 // nonce of the last challenge of this peer we answered
	answeredAt  int64
	// acking: it acknowledged an update of ours since it was last marked up
	// (AckingPeers). Cleared when it goes down, leaves or restarts.
	acking bool
	hb     hbPeer // its heartbeat, this session
}

type pending struct {
	home   uint32
	id     uint64
	origin uint32
	peer   int32
	tries  uint8
	used   bool
	gen    uint32
}

type hent struct {
	due  int64
	slot int32
	gen  uint32
}

type download struct {
	active    bool
	id        uint32
	attempt   uint8
	nex       uint8
	exclude   [MaxExclude]uint32
	responder uint32
	total     uint32
	ngot      uint32
	got       []uint64
	reqDue    int64
	progress  int64
	requests  int
	// resend: a member challenged our session, so it dropped our request;
	// repeat the same attempt at reqDue (not a retry: Attempt unchanged).
	resend bool
}

type serve struct {
	peer  int32
	addr  netip.Addr
	reqID uint32
	keys  []uint32
	n     uint32
	base  uint32
	next  uint32
	acked []uint64
	due   []int64
	tries []uint8
}

// Errors of the local write calls.
var (
	ErrStale = errors.New("hasync: registration Identification is not newer than the group's binding for this home address: refuse it (RFC 5944 code 133)")
)

// Machine is the group protocol state machine of one member. It owns the
// binding table's mutations (the agent reads it freely but writes only
// through Register/Deregister). Not safe for concurrent use.
type Machine struct {
	cfg  Config
	id   uint32
	keys *Keyring
	tab  *binding.Table
	log  *slog.Logger

	selfWarned int64 // last "own id" warning (rate limit)
	peerWarned int64 // last "peer refused" warning (rate limit)
	nonces     uint64
	badSrc     [authSources]authSource
	seq        uint32
	init       bool
	reqN       uint32
	rng        uint64

	peers []peer

	pend  []pending
	pfree []int32
	pidx  map[uint64]int32
	heap  []hent

	dl     download
	serves []*serve

	nextDigest int64
	hb         hbState

	repairNext   int   // table position the next repair starts from (repair)
	refuseWarned int64 // last "record refused" warning (rate limit, admit.go)
	floorWarned  int64 // last "older than a folded tombstone" warning (rate limit, admit.go)

	arena    []byte
	expired  []binding.Entry
	expireFn func(*binding.Entry)
	digest   Digest // scratch: ours
	rxDigest Digest
	rxList   HAList
	rxReq    TableRequest
	rxRep    TableReply
	rxChal   Challenge
	rec      Record

	C Counters
}

// New validates cfg and returns a Machine that is not initialized; call
// Start to begin the table download.
func New(cfg Config, tab *binding.Table) (*Machine, error) {
	cfg.defaults()
	if cfg.ID == 0 {
		return nil, fmt.Errorf("hasync: agent id 0: set a non-zero id (default: the home LAN IPv4 address)")
	}
	if cfg.Session == 0 {
		return nil, fmt.Errorf("hasync: session 0: pass a random non-zero value chosen at every start")
	}
	if cfg.MaxLifetime > cfg.TombstoneTTL {
		return nil, fmt.Errorf("hasync: tombstone period %v shorter than the longest granted lifetime %v: a stale update could resurrect a de-registered binding; raise the tombstone period", cfg.TombstoneTTL, cfg.MaxLifetime)
	}
	if tab == nil {
		return nil, fmt.Errorf("hasync: nil binding table")
	}
	if cfg.MaxPeers > MaxPeers {
		return nil, fmt.Errorf("hasync: %d peers allowed, at most %d (a Home Agent List carries %d members)", cfg.MaxPeers, MaxPeers, MaxHAs)
	}
	if len(cfg.Peers) > cfg.MaxPeers {
		return nil, fmt.Errorf("hasync: %d unicast peers configured, at most %d", len(cfg.Peers), cfg.MaxPeers)
	}
	k, err := NewKeyring(cfg.Keys, cfg.SendKey)
	if err != nil {
		return nil, err
	}
	m := &Machine{
		cfg: cfg, id: cfg.ID, keys: k, tab: tab, log: cfg.Logger,
		rng:   uint64(cfg.Session)<<32 | uint64(cfg.ID) | 1,
		pend:  make([]pending, cfg.MaxPending),
		pfree: make([]int32, 0, cfg.MaxPending),
		pidx:  make(map[uint64]int32, cfg.MaxPending),
		heap:  make([]hent, 0, cfg.MaxPending),
		arena: make([]byte, 0, 64<<10),
		peers: make([]peer, 0, cfg.MaxPeers),
	}
	m.nonces = cfg.Entropy
	if m.nonces == 0 {
		m.nonces = uint64(cfg.Session)<<32 | uint64(cfg.ID)
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	for i := len(m.pend) - 1; i >= 0; i-- {
		m.pfree = append(m.pfree, int32(i))
	}
	for _, a := range cfg.Peers {
		m.peers = append(m.peers, peer{addr: a.Unmap()})
	}
	m.hb.demand, m.hb.prio = cfg.HeartbeatDemand, cfg.HeartbeatPriority
	m.expireFn = func(e *binding.Entry) {
		if !e.Tombstone() {
			m.expired = append(m.expired, *e)
		}
	}
	return m, nil
}

// Initialized reports whether the table is initialized from the group
// (claims 9-10): until then the member must not take Home Agent duties.
func (m *Machine) Initialized() bool { return m.init }

// Counters returns a copy of the counters.
func (m *Machine) Counters() Counters { return m.C }

// Peers appends the Home Agent list to dst.
func (m *Machine) Peers(dst []PeerInfo) []PeerInfo {
	for i := range m.peers {
		p := &m.peers[i]
		if p.id == 0 {
			continue
		}
		pi := PeerInfo{ID: p.id, Addr: p.addr, LastHeard: p.heard, Up: p.up, Initialized: p.init, InSync: p.inSync, Acking: p.acking, Outstanding: p.outstanding, Proven: p.rw.Session != 0}
		pi.AuthFailures, pi.AuthFailedAt = m.authFailuresFrom(p.addr)
		dst = append(dst, pi)
	}
	return dst
}

// Start begins operation at now: it multicasts a Binding Table Request
// (claims 9-11) and arms the timers. Call it once, before anything else.
func (m *Machine) Start(now int64, out []Action) []Action {
	m.arena = m.arena[:0]
	m.dl = download{active: true}
	m.nextDigest = now + int64(m.cfg.DigestPeriod)
	return m.sendRequest(now, out, true)
}

// ---------- sending helpers

func (m *Machine) begin(typ uint8) int {
	start := len(m.arena)
	m.seq++
	h := Header{Version: Version, Type: typ, Sender: m.id, Session: m.cfg.Session, Seq: m.seq}
	m.arena, _ = h.AppendBinary(m.arena)
	return start
}

// finish seals the message at arena[start:] and emits it to the group
// (to invalid) or to one address. It returns the number of datagrams.
func (m *Machine) finish(out []Action, start int, to netip.Addr) ([]Action, int) {
	var err error
	m.arena, err = m.keys.Seal(m.arena, start)
	if err != nil { // a bug: every message is sized to fit
		m.log.Error("hasync: message too long, not sent", "err", err)
		m.arena = m.arena[:start]
		return out, 0
	}
	pkt := m.arena[start:len(m.arena):len(m.arena)]
	if to.IsValid() {
		return append(out, Action{Kind: ActUnicast, To: to, Pkt: pkt}), 1
	}
	if len(m.cfg.Peers) == 0 {
		return append(out, Action{Kind: ActMulticast, Pkt: pkt}), 1
	}
	for _, a := range m.cfg.Peers {
		out = append(out, Action{Kind: ActUnicast, To: a, Pkt: pkt})
	}
	return out, len(m.cfg.Peers)
}

func msOf(d int64) uint32 {
	if d <= 0 {
		return 0
	}
	d /= int64(time.Millisecond)
	if d > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(d)
}

func recordOf(e *binding.Entry, now int64, r *Record) {
	*r = Record{MNFlags: e.Flags, Granted: e.Granted, Remaining: msOf(e.Expires - now), Home: e.Home,
		HomeAgent: e.HomeAgent, CareOf: e.CareOf, ID: e.ID, Origin: e.Origin}
	if e.Tombstone() {
		r.Flags = RecDereg
		r.Granted = 0
	}
}

// newer reports whether version a is larger than version b (spec §1).
func newer(aID uint64, aOrigin uint32, aTomb bool, bID uint64, bOrigin uint32, bTomb bool) bool {
	if aID != bID {
		return aID > bID
	}
	if aOrigin != bOrigin {
		return aOrigin > bOrigin
	}
	return aTomb && !bTomb
}

// ---------- local writes (claims 1, 23)

// Register records a registration or renewal accepted by this member and
// multicasts it to the group (claim 1). e.Home, CareOf, HomeAgent, ID,
// Granted, Flags, Node are used; Origin is set to this member's id,
// Registered to now and Expires to now+Granted. Returns binding.ErrFull
// (reply 130) or ErrStale (reply 133) and then changes nothing.
func (m *Machine) Register(now int64, e binding.Entry, out []Action) ([]Action, error) {
	m.arena = m.arena[:0]
	e.Origin, e.Registered = m.id, now
	e.Expires = now + int64(e.Granted)*int64(time.Second)
	if old := m.tab.Get(e.Home); old != nil && !newer(e.ID, e.Origin, false, old.ID, old.Origin, old.Tombstone()) {
		return out, ErrStale
	}
	if m.tab.Covered(e.Home, e.ID, now) {
		m.floored(now, e.Home, e.ID)
		return out, ErrStale
	}
	p, err := m.tab.Put(e)
	if err != nil {
		return out, err
	}
	recordOf(p, now, &m.rec)
	return m.update(now, out), nil
}

// Deregister records a de-registration (lifetime 0) with the mobile node's
// Identification id accepted by this member: the binding becomes a
// tombstone (claim 23) and the group is told.
func (m *Machine) Deregister(now int64, home uint32, id uint64, out []Action) ([]Action, error) {
	m.arena = m.arena[:0]
	if old := m.tab.Get(home); old != nil && !newer(id, m.id, true, old.ID, old.Origin, old.Tombstone()) {
		return out, ErrStale
	}
	p := m.tab.Tombstone(home, id, m.id, now+int64(m.cfg.TombstoneTTL))
	if p == nil { // folded for lack of room, or tombstones disabled: still tell the group
		m.rec = Record{Flags: RecDereg, Remaining: msOf(int64(m.cfg.TombstoneTTL)), Home: home, ID: id, Origin: m.id}
	} else {
		recordOf(p, now, &m.rec)
	}
	return m.update(now, out), nil
}

// Reannounce multicasts the table's current version of home again, as a
// new binding update that every up peer is expected to acknowledge. The
// agent uses it when a node retransmits a request already written: an
// acknowledgement (ActAcked) then proves the binding is replicated, whatever
// happened to the first update. Nothing is sent for an unknown home.
func (m *Machine) Reannounce(now int64, home uint32, out []Action) []Action {
	m.arena = m.arena[:0]
	e := m.tab.Get(home)
	if e == nil {
		return out
	}
	recordOf(e, now, &m.rec)
	return m.update(now, out)
}

// update multicasts m.rec and records the acks expected (claims 1, 7, 8).
func (m *Machine) update(now int64, out []Action) []Action {
	if len(m.peers) == 0 { // claim 7: nobody else in the group
		return out
	}
	start := m.begin(TypeBindingUpdate)
	m.arena, _ = m.rec.AppendBinary(m.arena)
	out, n := m.finish(out, start, netip.Addr{})
	m.C.UpdatesSent++
	m.C.UpdatesTotal += uint64(n)
	for i := range m.peers {
		if m.peers[i].up {
			m.addPending(now, int32(i), m.rec.Home, m.rec.ID, m.rec.Origin)
		}
	}
	return out
}

// ---------- outstanding updates

func pkey(peer int32, home uint32) uint64 { return uint64(peer)<<32 | uint64(home) }

func (m *Machine) addPending(now int64, peer int32, home uint32, id uint64, origin uint32) {
	k := pkey(peer, home)
	if s, ok := m.pidx[k]; ok {
		p := &m.pend[s]
		p.id, p.origin, p.tries = id, origin, 0
		p.gen++
		m.push(hent{due: now + int64(m.cfg.AckTimeout), slot: s, gen: p.gen})
		return
	}
	if pr := &m.peers[peer]; !pr.acking && (pr.outstanding >= m.cfg.UnackedPending || len(m.pfree) <= len(m.pend)/2) {
		// Not acknowledged since it came up: its silence may be all it
		// ever gives. It gets a few outstanding updates and never the
		// half of the set kept for peers that do acknowledge; anti-entropy
		// repairs it once it acknowledges.
		m.C.PendingRefused++
		m.markResync(peer)
		return
	}
	if len(m.pfree) == 0 {
		m.C.UpdatesFailed++
		m.markResync(peer)
		return
	}
	s := m.pfree[len(m.pfree)-1]
	m.pfree = m.pfree[:len(m.pfree)-1]
	p := &m.pend[s]
	gen := p.gen + 1
	*p = pending{home: home, id: id, origin: origin, peer: peer, used: true, gen: gen}
	m.pidx[k] = s
	if m.peers[peer].outstanding++; m.peers[peer].outstanding == 1 {
		m.peers[peer].hb.owed = now // a debt begins (demand-mode liveness)
	}
	m.push(hent{due: now + int64(m.cfg.AckTimeout), slot: s, gen: gen})
}

func (m *Machine) release(s int32) {
	p := &m.pend[s]
	delete(m.pidx, pkey(p.peer, p.home))
	m.peers[p.peer].outstanding--
	p.used = false
	p.gen++
	m.pfree = append(m.pfree, s)
}

func (m *Machine) markResync(peer int32) {
	m.peers[peer].inSync = false
	m.peers[peer].needDigest = true
}

func (m *Machine) push(h hent) {
	if len(m.heap) == cap(m.heap) { // drop stale entries before growing
		j := 0
		for _, x := range m.heap {
			if m.pend[x.slot].gen == x.gen && m.pend[x.slot].used {
				m.heap[j] = x
				j++
			}
		}
		m.heap = m.heap[:j]
		for i := len(m.heap)/2 - 1; i >= 0; i-- {
			m.down(i)
		}
	}
	m.heap = append(m.heap, h)
	i := len(m.heap) - 1
	for i > 0 {
		p := (i - 1) / 2
		if m.heap[p].due <= m.heap[i].due {
			break
		}
		m.heap[p], m.heap[i] = m.heap[i], m.heap[p]
		i = p
	}
}

func (m *Machine) down(i int) {
	n := len(m.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		c := l
		if r := l + 1; r < n && m.heap[r].due < m.heap[l].due {
			c = r
		}
		if m.heap[i].due <= m.heap[c].due {
			return
		}
		m.heap[i], m.heap[c] = m.heap[c], m.heap[i]
		i = c
	}
}

func (m *Machine) pop() hent {
	h := m.heap[0]
	n := len(m.heap) - 1
	m.heap[0] = m.heap[n]
	m.heap = m.heap[:n]
	if n > 0 {
		m.down(0)
	}
	return h
}

func (m *Machine) retransmit(now int64, out []Action) []Action {
	for len(m.heap) > 0 && m.heap[0].due <= now {
		h := m.pop()
		p := &m.pend[h.slot]
		if !p.used || p.gen != h.gen {
			continue
		}
		if int(p.tries) >= m.cfg.MaxRetries {
			m.C.UpdatesFailed++
			pr := &m.peers[p.peer]
			// At most one line per peer per 10 s, not one per binding: a silent peer
			// during a registration storm would otherwise flood the console.
			if pr.warnedAt == 0 || now-pr.warnedAt >= int64(10*time.Second) {
				pr.warnedAt = now
				m.log.Warn("hasync: binding update not acknowledged, peer marked for resync", "peer", pr.addr, "id", pr.id, "home", binding.U32Addr(p.home), "failed_total", m.C.UpdatesFailed)
			}
			// A peer that let an update run out of retries is not acking
			// any more, up or not: its silence has been proven. In a group
			// of two, the survivor of a crash would otherwise answer 130 until
			// DeadInterval (35 s) marks the peer down; now only until the
			// retries run out (AckTimeout doubled MaxRetries times: 15.75 s
			// by default). Its next ack makes it acking again.
			pr.acking = false
			m.markResync(p.peer)
			m.release(h.slot)
			continue
		}
		e := m.tab.Get(p.home)
		if e == nil { // purged meanwhile: nothing left to tell
			m.release(h.slot)
			continue
		}
		p.tries++
		p.id, p.origin = e.ID, e.Origin
		m.push(hent{due: now + int64(m.cfg.AckTimeout)<<p.tries, slot: h.slot, gen: p.gen})
		recordOf(e, now, &m.rec)
		start := m.begin(TypeBindingUpdate)
		m.arena, _ = m.rec.AppendBinary(m.arena)
		out, _ = m.finish(out, start, m.peers[p.peer].addr)
		m.C.UpdatesTotal++
	}
	return out
}

// ---------- receive

// Receive processes one datagram from src (its source address) that
// arrived with IP TTL ttl. Bad datagrams are counted and change nothing.
func (m *Machine) Receive(now int64, src netip.Addr, ttl uint8, pkt []byte, out []Action) []Action {
	m.arena = m.arena[:0]
	if ttl != RequiredTTL {
		m.C.BadTTL++
		m.C.SecViolations++
		return out
	}
	var h Header
	if err := h.UnmarshalBinary(pkt); err != nil {
		m.C.Malformed++
		return out
	}
	if err := m.keys.Open(pkt); err != nil {
		if err == ErrUnknownKey {
			m.C.UnknownKey++
		} else {
			m.C.BadAuth++
		}
		m.C.SecViolations++
		m.authFailed(now, src.Unmap(), h.Sender, err)
		return out
	}
	if h.Sender == m.id || h.Sender == 0 {
		// Authenticated, yet naming us (or nobody): another member was
		// given our agent_id, or a message of ours was replayed to us.
		// Either way an operator must hear of it, at a bounded rate.
		m.C.PeersRejected++
		if m.selfWarned == 0 || now-m.selfWarned >= int64(10*time.Second) {
			m.selfWarned = now
			m.log.Warn("hasync: a group message names this agent's own id: is agent_id configured twice in the group (or are this agent's own messages being replayed to it)?", "src", src, "id", h.Sender, "same_session", h.Session == m.cfg.Session)
		}
		return out
	}
	body := Body(pkt)
	var err error
	switch h.Type {
	case TypeBindingUpdate:
		err = m.rec.UnmarshalBinary(body)
	case TypeUpdateAck:
		var a UpdateAck
		if err = a.UnmarshalBinary(body); err == nil {
			m.rec = Record{Home: a.Home, ID: a.ID, Origin: a.Origin, Flags: a.Code}
		}
	case TypeTableRequest:
		err = m.rxReq.UnmarshalBinary(body)
	case TypeHAList:
		err = m.rxList.UnmarshalBinary(body)
	case TypeTableReply:
		err = m.rxRep.UnmarshalBinary(body)
	case TypeReplyAck:
		var a ReplyAck
		if err = a.UnmarshalBinary(body); err == nil {
			m.rxRep = TableReply{Code: a.Code, MoreBind: a.MoreBind, ID: a.ID, Chunk: a.Chunk}
		}
	case TypeDigest:
		err = m.rxDigest.UnmarshalBinary(body)
	case TypeLeave:
		if len(body) != 0 {
			err = ErrLength
		}
	case TypeChallenge, TypeResponse:
		err = m.rxChal.UnmarshalBinary(body)
	case TypeHeartbeat:
		err = m.hb.rx.UnmarshalBinary(body)
	default:
		err = ErrType
	}
	if err != nil {
		m.C.Malformed++
		return out
	}
	src = src.Unmap()
	pi := m.peerFor(h.Sender, src, false)
	if pi < 0 {
		m.C.PeersRejected++
		if m.peerWarned == 0 || now-m.peerWarned >= int64(10*time.Second) {
			m.peerWarned = now
			m.log.Warn("hasync: group member refused: the Home Agent list is full (raise group.max_members if the group really is that large)", "src", src, "id", h.Sender, "max_peers", m.cfg.MaxPeers, "refused_total", m.C.PeersRejected)
		}
		return out
	}
	p := &m.peers[pi]
	if h.Session != p.rw.Session {
		// A session this member has not proven: the peer restarted, is new,
		// or this is a replay of an earlier session. Nothing in it is
		// applied and its source is not taken (spec §3.1).
		return m.unproven(now, pi, &h, src, out)
	}
	if !p.rw.Check(h.Session, h.Seq) {
		m.C.Replay++
		m.C.SecViolations++
		return out
	}
	p.rw.Accept(h.Seq)
	// Only a fresh message moves the peer: a replay sent from elsewhere
	// must not redirect its acks, retransmissions and table replies.
	if src.IsValid() {
		p.addr = src
	}
	out = m.revived(pi, false, out)
	m.heard(now, pi, false)
	switch h.Type {
	case TypeChallenge:
		out = m.onChallenge(now, pi, out)
	case TypeResponse:
		if m.rxChal.Peer == m.id && m.rxChal.Nonce == p.nonce {
			p.nonce = 0 // answered from the session already proven
		}
	case TypeLeave:
		m.C.LeavesReceived++
		m.left(pi)
	case TypeBindingUpdate:
		m.C.UpdatesReceived++
		code := AckAccepted
		code, out = m.merge(now, &m.rec, out)
		a := UpdateAck{Code: code, Home: m.rec.Home, ID: m.rec.ID, Origin: m.rec.Origin}
		start := m.begin(TypeUpdateAck)
		m.arena, _ = a.AppendBinary(m.arena)
		out, _ = m.finish(out, start, p.addr)
		m.C.UpdateAcksSent++
	case TypeUpdateAck:
		m.C.UpdateAcksReceived++
		out = m.onUpdateAck(pi, out)
	case TypeTableRequest:
		out = m.onRequest(now, pi, out)
	case TypeHAList:
		out = m.onList(now, pi, out)
	case TypeTableReply:
		out = m.onReply(now, pi, out)
	case TypeReplyAck:
		out = m.onReplyAck(now, pi, out)
	case TypeDigest:
		out = m.onDigest(now, pi, out)
	case TypeHeartbeat:
		m.onHeartbeat(pi)
	}
	return out
}

// peerFor finds or adds the peer with agent id id heard from src. A known
// peer's address becomes src only with move (a Home Agent list's entry);
// Receive moves it itself once the message has passed the replay check.
func (m *Machine) peerFor(id uint32, src netip.Addr, move bool) int {
	for i := range m.peers {
		if m.peers[i].id == id {
			if move && src.IsValid() {
				m.peers[i].addr = src
			}
			return i
		}
	}
	for i := range m.peers { // a configured unicast peer heard for the first time
		if m.peers[i].id == 0 && m.peers[i].addr == src {
			m.peers[i].id = id
			return i
		}
	}
	if len(m.peers) >= m.cfg.MaxPeers {
		return m.reclaim(id)
	}
	// No address yet: the datagram that names a new agent id has not
	// proven its session; the proof, or a Home Agent List, gives it one.
	m.peers = append(m.peers, peer{id: id})
	if move {
		m.peers[len(m.peers)-1].addr = src
	}
	return len(m.peers) - 1
}

// reclaim gives the slot of a peer that never proved a session, is not up
// and holds nothing (an agent id known only from a replay, say of a member
// since removed) to agent id id; -1 if there is none. A configured unicast
// peer's slot is never reclaimed.
func (m *Machine) reclaim(id uint32) int {
	for i := range m.peers {
		p := &m.peers[i]
		if p.rw.Session != 0 || p.up || p.outstanding != 0 || slices.Contains(m.cfg.Peers, p.addr) {
			continue
		}
		*p = peer{id: id}
		return i
	}
	return -1
}

// Leave tells the group this member is stopping cleanly (SIGTERM), so that
// peers stop expecting its acknowledgements now rather than after the dead
// interval. Send it before closing the socket.
func (m *Machine) Leave(now int64, out []Action) []Action {
	m.arena = m.arena[:0]
	if len(m.peers) == 0 {
		return out
	}
	start := m.begin(TypeLeave)
	out, _ = m.finish(out, start, netip.Addr{})
	return out
}

// left marks peer pi down on its Leave: nothing outstanding to it is
// retransmitted, and UpPeers no longer counts it.
func (m *Machine) left(pi int) {
	p := &m.peers[pi]
	m.log.Info("hasync: peer left the group", "peer", p.addr, "id", p.id)
	p.up, p.inSync, p.acking = false, false, false
	for s := range m.pend {
		if m.pend[s].used && int(m.pend[s].peer) == pi {
			m.release(int32(s))
		}
	}
}

func (m *Machine) heard(now int64, pi int, restarted bool) {
	p := &m.peers[pi]
	if !p.up || restarted {
		m.hb.next = 0 // tell it our heartbeat parameters at the next Tick
	}
	if !p.up {
		m.log.Info("hasync: peer up", "peer", p.addr, "id", p.id)
		if p.heard != 0 {
			m.markResync(int32(pi))
		}
	}
	if restarted {
		m.log.Info("hasync: peer restarted", "peer", p.addr, "id", p.id)
		p.init, p.acking = false, false
		p.hb = hbPeer{}
		m.markResync(int32(pi))
	}
	p.up, p.heard = true, now
}

// merge applies one record with the group's merge rule (spec §1) and
// returns the Update Ack code.
func (m *Machine) merge(now int64, r *Record, out []Action) (uint8, []Action) {
	e := m.tab.Get(r.Home)
	dead := r.Dereg() || r.Remaining == 0
	if !m.admit(now, r, e != nil) {
		return AckRefused, out
	}
	if e != nil && !newer(r.ID, r.Origin, dead, e.ID, e.Origin, e.Tombstone()) {
		if r.ID == e.ID && r.Origin == e.Origin && dead == e.Tombstone() {
			return AckAccepted, out
		}
		m.C.Superseded++
		return AckSuperseded, out
	}
	if !dead && m.tab.Covered(r.Home, r.ID, now) {
		// A tombstone that may be newer was folded for lack of room:
		// storing this could undo a de-registration. Not stored, so not a
		// replication either: refused, not superseded.
		m.floored(now, r.Home, r.ID)
		return AckRefused, out
	}
	if dead {
		wasLive := e != nil && !e.Tombstone()
		purge := now + int64(r.Remaining)*int64(time.Millisecond)
		if !r.Dereg() { // expired in flight: a tombstone like a local expiry
			purge = now + int64(m.cfg.TombstoneTTL)
		}
		var old binding.Entry
		if wasLive {
			old = *e
		}
		if t := m.tab.Tombstone(r.Home, r.ID, r.Origin, purge); t != nil && !wasLive {
			t.CareOf, t.HomeAgent, t.Flags = r.CareOf, r.HomeAgent, r.MNFlags
		}
		if wasLive {
			out = append(out, Action{Kind: ActUnbind, Entry: old})
		}
		return AckAccepted, out
	}
	ne := binding.Entry{Home: r.Home, CareOf: r.CareOf, HomeAgent: r.HomeAgent, Origin: r.Origin, ID: r.ID, Node: -1,
		Granted: r.Granted, Flags: r.MNFlags, Registered: now, Expires: now + int64(r.Remaining)*int64(time.Millisecond)}
	if e != nil && !e.Tombstone() {
		ne.Node = e.Node
	}
	p, err := m.tab.Put(ne)
	if err != nil {
		m.C.TableFull++
		return AckTableFull, out
	}
	return AckAccepted, append(out, Action{Kind: ActBinding, Entry: *p})
}

func (m *Machine) onUpdateAck(pi int, out []Action) []Action {
	a := &m.rec // Flags holds the code
	s, ok := m.pidx[pkey(int32(pi), a.Home)]
	if !ok {
		return out
	}
	p := &m.pend[s]
	if newer(p.id, p.origin, false, a.ID, a.Origin, false) {
		return out // acknowledges an older version than the one outstanding
	}
	switch a.Flags {
	case AckTableFull:
		m.C.UpdatesFailed++
		m.markResync(int32(pi))
	case AckRefused:
		// Not stored there (its configuration does not admit this home,
		// or a floor covers it): resending would be refused again. Not a
		// replication either.
		m.C.UpdatesRefused++
	default:
		m.peers[pi].acking = true
		out = append(out, Action{Kind: ActAcked, Entry: binding.Entry{Home: a.Home, ID: p.id, Origin: p.origin}})
	}
	m.release(s)
	return out
}

// UpPeers is how many members of the Home Agent list are up: the number of
// acknowledgements an update can expect.
func (m *Machine) UpPeers() int {
	n := 0
	for i := range m.peers {
		if m.peers[i].up {
			n++
		}
	}
	return n
}

// AckingPeers is how many up peers have acknowledged an update of this
// member since they were last marked up: the ones whose silence means
// something. A peer that is heard but never acknowledges (one replayed
// group message creates such a "peer" for DeadInterval; so does a member
// that only listens) is up but not acking. The agent asks it when a
// registration reply's wait for an ack ends: with an acking peer up, the
// missing ack more likely means this member is cut off than that it is
// alone.
func (m *Machine) AckingPeers() int {
	n := 0
	for i := range m.peers {
		if m.peers[i].up && m.peers[i].acking {
			n++
		}
	}
	return n
}

// ---------- table download: requester side (claims 9-13, 26-32)

func (m *Machine) sendRequest(now int64, out []Action, fresh bool) []Action {
	if fresh {
		m.reqN++
		m.dl.id = m.cfg.Session ^ m.reqN<<8 ^ m.reqN
		if m.dl.id == 0 {
			m.dl.id = 1
		}
		m.dl.responder, m.dl.total, m.dl.ngot = 0, 0, 0
		m.dl.got = m.dl.got[:0]
	}
	r := TableRequest{Attempt: m.dl.attempt, NumExclude: m.dl.nex, ID: m.dl.id, Exclude: m.dl.exclude}
	start := m.begin(TypeTableRequest)
	m.arena, _ = r.AppendBinary(m.arena)
	out, n := m.finish(out, start, netip.Addr{})
	if m.dl.requests == 0 {
		m.C.TableRequestsSent++
	}
	m.C.TableRequestsTotal += uint64(n)
	m.dl.requests++
	m.dl.reqDue = now + int64(m.cfg.RequestTimeout)
	m.dl.progress = now
	return out
}

func (m *Machine) knowInitialized() bool {
	for i := range m.peers {
		p := &m.peers[i]
		if p.up && p.init && !m.excluded(p.id) {
			return true
		}
	}
	return false
}

func (m *Machine) excluded(id uint32) bool {
	for _, x := range m.dl.exclude[:m.dl.nex] {
		if x == id {
			return true
		}
	}
	return false
}

func (m *Machine) lowestKnown() bool {
	for i := range m.peers {
		p := &m.peers[i]
		if p.up && p.id != 0 && p.id < m.id && !m.excluded(p.id) {
			return false
		}
	}
	return true
}

func (m *Machine) becomeInitialized(now int64, out []Action, why string) []Action {
	m.init = true
	m.dl.active = false
	m.dl.got = nil
	m.log.Info("hasync: binding table initialized", "how", why, "bindings", m.tab.Len(), "tombstones", m.tab.Tombs())
	out = append(out, Action{Kind: ActInitialized})
	m.nextDigest = now
	return m.sendDigests(now, out)
}

func (m *Machine) downloadTimers(now int64, out []Action) []Action {
	d := &m.dl
	if !d.active {
		return out
	}
	if d.responder != 0 {
		if now-d.progress < int64(m.cfg.StallTimeout) {
			return out
		}
		m.log.Warn("hasync: table download stalled, asking the next responder", "responder", d.responder, "chunks", d.ngot, "of", d.total)
		m.C.TableRequestsFailed++
		if d.nex < MaxExclude {
			d.exclude[d.nex] = d.responder
			d.nex++
		}
		d.attempt++
		return m.sendRequest(now, out, true)
	}
	if now < d.reqDue {
		return out
	}
	if d.resend {
		d.resend = false
		return m.resendRequest(now, out)
	}
	if d.requests >= m.cfg.AloneAttempts && !m.knowInitialized() && m.lowestKnown() {
		m.C.TableRequestsFailed++
		return m.becomeInitialized(now, out, "no initialized member answered")
	}
	d.attempt++
	return m.sendRequest(now, out, false)
}

func (m *Machine) replyAck(out []Action, to netip.Addr, code uint8, id, chunk, more uint32) []Action {
	a := ReplyAck{Code: code, MoreBind: more, ID: id, Chunk: chunk}
	start := m.begin(TypeReplyAck)
	m.arena, _ = a.AppendBinary(m.arena)
	out, _ = m.finish(out, start, to)
	m.C.TableAcksSent++
	return out
}

// chunk records chunk c (of total) from the responder pi; returns whether the
// download is now complete.
func (m *Machine) chunk(now int64, pi int, c, total uint32) bool {
	d := &m.dl
	if d.responder == 0 {
		d.responder = m.peers[pi].id
	}
	if d.total == 0 {
		d.total = total
		d.got = make([]uint64, (total+63)/64)
	}
	if total != d.total || c >= d.total {
		return false
	}
	if d.got[c/64]&(1<<(c%64)) == 0 {
		d.got[c/64] |= 1 << (c % 64)
		d.ngot++
		d.progress = now
	}
	return d.ngot == d.total
}

// mine reports whether an answer with download id id from peer pi belongs to
// the running download (and not to a second responder).
func (m *Machine) mine(pi int, id uint32) bool {
	return m.dl.active && id == m.dl.id && (m.dl.responder == 0 || m.dl.responder == m.peers[pi].id)
}

func (m *Machine) onList(now int64, pi int, out []Action) []Action {
	l := &m.rxList
	m.learnList(now, l)
	p := &m.peers[pi]
	p.init = true
	m.C.TableRepliesReceived++
	if !m.mine(pi, l.ID) {
		if !m.dl.active || l.ID != m.dl.id {
			m.C.TableRepliesDropped++
		}
		return m.replyAck(out, p.addr, ReplyAckAbort, l.ID, 0, l.MoreBind)
	}
	done := m.chunk(now, pi, 0, l.MoreBind+1)
	out = m.replyAck(out, p.addr, ReplyAckOK, l.ID, 0, l.MoreBind)
	if done {
		m.C.Downloads++
		out = m.becomeInitialized(now, out, "downloaded from "+p.addr.String())
	}
	return out
}

// learnList adds the members of a Home Agent list (claims 15, 31).
func (m *Machine) learnList(now int64, l *HAList) {
	for i := range int(l.NumHA) {
		h := &l.HAs[i]
		if h.ID == m.id || h.ID == 0 {
			continue
		}
		known := false
		for j := range m.peers {
			if m.peers[j].id == h.ID {
				known = true
				m.peers[j].init = m.peers[j].init || h.Flags&HAInitialized != 0
			}
		}
		if !known && h.Flags&HAAlive != 0 {
			if j := m.peerFor(h.ID, binding.U32Addr(h.Addr), true); j >= 0 {
				// learnt second-hand: considered up until the dead interval
				// says otherwise, so that it expects our updates.
				m.peers[j].up, m.peers[j].heard = true, now
				m.peers[j].init = h.Flags&HAInitialized != 0
			}
		}
	}
}

func (m *Machine) onReply(now int64, pi int, out []Action) []Action {
	r := &m.rxRep
	p := &m.peers[pi]
	switch r.Code {
	case ReplyRepair:
		m.C.RepairsRecvd++
		out = m.mergeAll(now, r, out)
		return out
	case ReplyNotInitialized, ReplyBusy:
		m.C.TableRepliesReceived++
		if r.Code == ReplyNotInitialized {
			p.init = false
		}
		if m.dl.active && r.ID == m.dl.id && m.dl.responder == 0 {
			// Ask again soon: the next attempt designates another member.
			m.dl.reqDue = min(m.dl.reqDue, now+int64(m.cfg.RequestTimeout)/4)
		}
		return out
	case ReplyOK:
	default:
		m.C.Malformed++
		return out
	}
	m.C.TableRepliesReceived++
	p.init = true
	if !m.mine(pi, r.ID) {
		if !m.dl.active {
			m.C.TableRepliesDropped++
		} else {
			out = m.mergeAll(now, r, out) // a second responder: its data is as good
		}
		return m.replyAck(out, p.addr, ReplyAckAbort, r.ID, r.Chunk, r.MoreBind)
	}
	out = m.mergeAll(now, r, out)
	done := m.chunk(now, pi, r.Chunk, r.Chunk+r.MoreBind+1)
	out = m.replyAck(out, p.addr, ReplyAckOK, r.ID, r.Chunk, r.MoreBind)
	if done {
		m.C.Downloads++
		out = m.becomeInitialized(now, out, "downloaded from "+p.addr.String())
	}
	return out
}

func (m *Machine) mergeAll(now int64, r *TableReply, out []Action) []Action {
	var rec Record
	for i := range int(r.NumBind) {
		if r.Binding(i, &rec) == nil {
			_, out = m.merge(now, &rec, out)
		}
	}
	return out
}

// ---------- table download: responder side (claims 14-22, 42-49)

// designated reports whether this member answers a request from requester
// with the given attempt and exclusions (claim 17, spec §5.3).
func (m *Machine) designated(requester uint32, r *TableRequest) bool {
	if r.Excludes(m.id) {
		return false
	}
	before := func(init bool, id uint32) bool { // candidate sorts before me
		if init != m.init {
			return init
		}
		return id < m.id
	}
	rank, count := 0, 1
	for i := range m.peers {
		p := &m.peers[i]
		if !p.up || p.id == 0 || p.id == requester || r.Excludes(p.id) {
			continue
		}
		count++
		if before(p.init, p.id) {
			rank++
		}
	}
	return rank == int(r.Attempt)%count
}

func (m *Machine) onRequest(now int64, pi int, out []Action) []Action {
	r := &m.rxReq
	p := &m.peers[pi]
	m.C.RequestsReceived++
	p.init, p.inSync = false, false
	for _, s := range m.serves {
		if s.peer == int32(pi) && s.reqID == r.ID { // repeated request: resend what is unacked
			for c := s.base; c < s.next; c++ {
				s.due[c] = now
			}
			return m.pump(now, s, out)
		}
	}
	if !m.designated(p.id, r) {
		return out
	}
	m.cancelServe(int32(pi))
	code := ReplyOK
	if !m.init {
		code = ReplyNotInitialized
	} else if len(m.serves) >= m.cfg.MaxDownloads {
		code = ReplyBusy
	}
	if code != ReplyOK {
		rep := TableReply{Code: code, ID: r.ID}
		start := m.begin(TypeTableReply)
		m.arena = rep.AppendHeader(m.arena)
		out, _ = m.finish(out, start, p.addr)
		m.C.RepliesSent++
		m.C.RepliesTotal++
		return out
	}
	s := &serve{peer: int32(pi), addr: p.addr, reqID: r.ID, keys: make([]uint32, 0, m.tab.Len()+m.tab.Tombs())}
	m.tab.Range(func(e *binding.Entry) bool {
		s.keys = append(s.keys, e.Home)
		return true
	})
	s.n = 1 + uint32((len(s.keys)+MaxBindPerReply-1)/MaxBindPerReply)
	s.acked = make([]uint64, (s.n+63)/64)
	s.due = make([]int64, s.n)
	s.tries = make([]uint8, s.n)
	m.serves = append(m.serves, s)
	m.log.Info("hasync: serving binding table", "to", p.addr, "id", p.id, "bindings", len(s.keys), "chunks", s.n)
	return m.pump(now, s, out)
}

func (m *Machine) cancelServe(pi int32) {
	for i, s := range m.serves {
		if s.peer == pi {
			m.serves = append(m.serves[:i], m.serves[i+1:]...)
			return
		}
	}
}

func (s *serve) isAcked(c uint32) bool { return s.acked[c/64]&(1<<(c%64)) != 0 }

// pump retransmits due chunks and fills the window; it drops the serve when
// a chunk ran out of retries.
func (m *Machine) pump(now int64, s *serve, out []Action) []Action {
	for c := s.base; c < s.next; c++ {
		if s.isAcked(c) || s.due[c] > now {
			continue
		}
		if int(s.tries[c]) >= m.cfg.MaxRetries {
			m.C.RepliesFailed++
			m.log.Warn("hasync: table download abandoned: requester stopped acknowledging", "to", s.addr, "chunk", c, "of", s.n)
			m.dropServe(s)
			return out
		}
		s.tries[c]++
		s.due[c] = now + int64(m.cfg.AckTimeout)<<s.tries[c]
		out = m.sendChunk(now, s, c, out)
		m.C.RepliesTotal++
	}
	for s.next < s.n && s.next-s.base < uint32(m.cfg.Window) {
		c := s.next
		s.next++
		s.due[c] = now + int64(m.cfg.AckTimeout)
		out = m.sendChunk(now, s, c, out)
		m.C.RepliesSent++
		m.C.RepliesTotal++
	}
	return out
}

func (m *Machine) dropServe(s *serve) {
	for i, x := range m.serves {
		if x == s {
			m.serves = append(m.serves[:i], m.serves[i+1:]...)
			return
		}
	}
}

func (m *Machine) sendChunk(now int64, s *serve, c uint32, out []Action) []Action {
	if c == 0 {
		l := &m.rxList // scratch (not in use while sending)
		*l = HAList{ID: s.reqID, MoreBind: s.n - 1}
		l.HAs[0] = HAEntry{Addr: binding.AddrU32(m.cfg.Addr), ID: m.id, Flags: HAAlive | HAInitialized}
		l.NumHA = 1
		for i := range m.peers {
			p := &m.peers[i]
			if p.id == 0 || !p.addr.IsValid() || l.NumHA >= MaxHAs {
				continue // unknown id, or known only from an unproven message
			}
			f := uint8(0)
			if p.up {
				f |= HAAlive
			}
			if p.init {
				f |= HAInitialized
			}
			l.HAs[l.NumHA] = HAEntry{Addr: binding.AddrU32(p.addr), ID: p.id, Flags: f}
			l.NumHA++
		}
		start := m.begin(TypeHAList)
		m.arena, _ = l.AppendBinary(m.arena)
		out, _ = m.finish(out, start, s.addr)
		return out
	}
	lo := int(c-1) * MaxBindPerReply
	hi := min(lo+MaxBindPerReply, len(s.keys))
	start := m.begin(TypeTableReply)
	rep := TableReply{Code: ReplyOK, MoreBind: s.n - 1 - c, ID: s.reqID, Chunk: c}
	m.arena = rep.AppendHeader(m.arena)
	n := uint16(0)
	for _, home := range s.keys[lo:hi] {
		e := m.tab.Get(home)
		if e == nil {
			continue
		}
		recordOf(e, now, &m.rec)
		m.arena = AppendExt(m.arena, &m.rec)
		n++
	}
	be.PutUint16(m.arena[start+HeaderLen+2:], n)
	out, _ = m.finish(out, start, s.addr)
	return out
}

func (m *Machine) onReplyAck(now int64, pi int, out []Action) []Action {
	a := &m.rxRep
	var s *serve
	for _, x := range m.serves {
		if x.peer == int32(pi) && x.reqID == a.ID {
			s = x
		}
	}
	if s == nil || a.Chunk >= s.n {
		m.C.ReplyAcksDropped++
		return out
	}
	m.C.ReplyAcksReceived++
	if a.Code == ReplyAckAbort {
		m.dropServe(s)
		return out
	}
	s.acked[a.Chunk/64] |= 1 << (a.Chunk % 64)
	for s.base < s.next && s.isAcked(s.base) {
		s.base++
	}
	if s.base == s.n {
		m.log.Info("hasync: binding table served", "to", s.addr, "chunks", s.n)
		m.dropServe(s)
		return out
	}
	return m.pump(now, s, out)
}

// ---------- anti-entropy (spec §5.5)

func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// EntryHash and Bucket are the digest functions of spec §4.8.
func EntryHash(home, origin uint32, id uint64, tomb bool) uint64 {
	d := uint64(0)
	if tomb {
		d = 1
	}
	return mix(mix(mix(uint64(home)<<32|uint64(origin))^id) ^ d)
}

// Bucket is the digest bucket of a home address.
func Bucket(home uint32) int { return int(mix(uint64(home)) >> 57) }

func (m *Machine) computeDigest(now int64, d *Digest) {
	*d = Digest{}
	guard := int64(m.cfg.DigestGuard)
	m.tab.Range(func(e *binding.Entry) bool {
		if e.Expires-now < guard {
			return true
		}
		t := e.Tombstone()
		d.Buckets[Bucket(e.Home)] ^= EntryHash(e.Home, e.Origin, e.ID, t)
		if t {
			d.Tombs++
		} else {
			d.Live++
		}
		return true
	})
	if m.init {
		d.Flags |= DigestInit
	}
}

func (m *Machine) sendDigest(now int64, out []Action, to netip.Addr, flags uint8) []Action {
	m.computeDigest(now, &m.digest)
	m.digest.Flags |= flags
	start := m.begin(TypeDigest)
	m.arena, _ = m.digest.AppendBinary(m.arena)
	out, n := m.finish(out, start, to)
	m.C.DigestsSent += uint64(n)
	return out
}

func (m *Machine) sendDigests(now int64, out []Action) []Action {
	if !m.init {
		return out
	}
	if now >= m.nextDigest {
		m.rng ^= m.rng << 13
		m.rng ^= m.rng >> 7
		m.rng ^= m.rng << 17
		jitter := int64(m.rng % uint64(m.cfg.DigestPeriod/10+1))
		m.nextDigest = now + int64(m.cfg.DigestPeriod) + jitter
		// Sent even when no peer is known: the digest is also the hello
		// by which members that missed each other's start find each other.
		out = m.sendDigest(now, out, netip.Addr{}, 0)
		for i := range m.peers {
			m.peers[i].needDigest = false
		}
	}
	for i := range m.peers {
		p := &m.peers[i]
		if p.needDigest && p.up && now-p.digestAt >= m.resyncDigestGap() {
			p.needDigest, p.digestAt = false, now
			out = m.sendDigest(now, out, p.addr, 0)
		}
	}
	return out
}

func (m *Machine) onDigest(now int64, pi int, out []Action) []Action {
	d := &m.rxDigest
	p := &m.peers[pi]
	m.C.DigestsReceived++
	p.init = d.Flags&DigestInit != 0
	if !m.init || !p.init {
		return out
	}
	m.computeDigest(now, &m.digest)
	var diff [DigestBuckets / 64]uint64
	any := false
	for i := range d.Buckets {
		if d.Buckets[i] != m.digest.Buckets[i] {
			diff[i/64] |= 1 << (i % 64)
			any = true
		}
	}
	if !any {
		p.inSync = true
		return out
	}
	p.inSync = false
	m.C.DigestMismatches++
	out = m.repair(now, pi, &diff, out)
	if d.Flags&DigestAnswer == 0 {
		out = m.sendDigest(now, out, p.addr, DigestAnswer)
	}
	return out
}

// repair pushes this member's entries in the differing buckets to peer pi.
func (m *Machine) repair(now int64, pi int, diff *[DigestBuckets / 64]uint64, out []Action) []Action {
	to := m.peers[pi].addr
	start, n, chunks := -1, uint16(0), 0
	flush := func() {
		if start < 0 {
			return
		}
		be.PutUint16(m.arena[start+HeaderLen+2:], n)
		out, _ = m.finish(out, start, to)
		m.C.RepairsSent++
		chunks++
		start, n = -1, 0
	}
	push := func(e *binding.Entry) bool {
		b := Bucket(e.Home)
		if diff[b/64]&(1<<(b%64)) == 0 {
			return true
		}
		if start < 0 {
			start = m.begin(TypeTableReply)
			rep := TableReply{Code: ReplyRepair}
			m.arena = rep.AppendHeader(m.arena)
		}
		recordOf(e, now, &m.rec)
		m.arena = AppendExt(m.arena, &m.rec)
		n++
		if n == MaxBindPerReply {
			flush()
		}
		return chunks < m.cfg.MaxRepair
	}
	// Resume where the previous repair stopped, wrapping around: a peer
	// that differs in more entries than one repair carries gets the rest
	// next time, not the same first ones again (with every bucket
	// differing, it would never get the others). Entries past the resume
	// point may go twice in one repair: merging is idempotent.
	from := m.repairNext
	m.repairNext = m.tab.RangeFrom(from, push)
	if m.repairNext == 0 && from > 1 && chunks < m.cfg.MaxRepair {
		m.repairNext = m.tab.RangeFrom(0, push)
	}
	flush()
	return out
}

// resyncDigestGap is the least time between two digests sent to one peer
// alone (a resync): a peer that never acknowledges, marked for resync by
// every update, costs at most one digest per gap, not one per update.
func (m *Machine) resyncDigestGap() int64 { return int64(m.cfg.DigestPeriod) / 10 }

// ---------- timers

// Tick runs every timer due at now: binding expiry (live → tombstone) and
// tombstone purge, update retransmissions, table request retries, chunk
// retransmissions, dead peers, digests. Call it when NextDeadline passes
// (calling it more often is harmless).
func (m *Machine) Tick(now int64, out []Action) []Action {
	m.arena = m.arena[:0]
	m.expired = m.expired[:0]
	m.tab.Expire(now, m.expireFn)
	for i := range m.expired {
		e := &m.expired[i]
		m.tab.Tombstone(e.Home, e.ID, e.Origin, e.Expires+int64(m.cfg.TombstoneTTL))
		out = append(out, Action{Kind: ActUnbind, Entry: *e})
	}
	for i := range m.peers {
		p := &m.peers[i]
		if p.up && now-p.heard > int64(m.cfg.DeadInterval) {
			p.up, p.inSync, p.acking = false, false, false
			m.log.Warn("hasync: peer down (not heard)", "peer", p.addr, "id", p.id)
		}
	}
	out = m.checkLiveness(now, out)
	out = m.sendHeartbeat(now, out)
	out = m.retransmit(now, out)
	out = m.downloadTimers(now, out)
	for i := 0; i < len(m.serves); i++ {
		s := m.serves[i]
		out = m.pump(now, s, out)
		if i < len(m.serves) && m.serves[i] != s {
			i--
		}
	}
	return m.sendDigests(now, out)
}

// NextDeadline is the monotonic time Tick must run next (math.MaxInt64: no
// timer armed).
func (m *Machine) NextDeadline() int64 {
	t := int64(math.MaxInt64)
	// A bound, not the exact minimum: see binding.Table.DeadlineBound.
	if d, ok := m.tab.DeadlineBound(); ok {
		t = min(t, d)
	}
	if len(m.heap) > 0 {
		t = min(t, m.heap[0].due)
	}
	if m.dl.active {
		if m.dl.responder != 0 {
			t = min(t, m.dl.progress+int64(m.cfg.StallTimeout))
		} else {
			t = min(t, m.dl.reqDue)
		}
	}
	for _, s := range m.serves {
		for c := s.base; c < s.next; c++ {
			if !s.isAcked(c) {
				t = min(t, s.due[c])
			}
		}
	}
	if m.init {
		t = min(t, m.nextDigest)
	}
	t = m.heartbeatDeadline(t)
	for i := range m.peers {
		p := &m.peers[i]
		if p.up {
			t = min(t, p.heard+int64(m.cfg.DeadInterval)+1)
		}
		if p.needDigest && p.up && m.init {
			t = min(t, p.digestAt+m.resyncDigestGap())
		}
	}
	return t
}
