package hasync

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
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
	// AdmitPrefix judges each network a received record claims for home
	// (a mobile router's prefixes, RFC 5177) against this member's own
	// configuration, like Admit: "" admits it, anything else is why the
	// record is refused whole (not stored, ack code 2, RecordsRefused).
	// nil admits every network.
	AdmitPrefix func(home uint32, p netip.Prefix) string
	// AdmitNAI judges a record that names a fleet router's binding (its
	// RecExtNAI) in place of Admit and AdmitPrefix: p invalid, the home
	// address for the router with NAI nai; else each network it claims.
	// nil admits them all.
	AdmitNAI func(home uint32, nai []byte, p netip.Prefix) string
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
	// registration, a download, a repair): the datapath follows it when
	// this member is active, Dropped included.
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
	// Dropped (ActBinding): the networks of the live binding Entry
	// replaced that Entry does not carry; their routes must go.
	Dropped Dropped
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

// Errors of the local write calls.
var (
	ErrStale = errors.New("hasync: registration Identification is not newer than the group's binding for this home address")
	// ErrEndpoint: the entry's NAT endpoint could not replicate (every
	// peer would drop it as malformed): UDP encapsulation without the NAT
	// address and port, or an encapsulation binding does not define. A
	// caller's bug: fill NATAddr and NATPort from the request's source.
	ErrEndpoint = errors.New("hasync: Register: UDP encapsulation without a NAT address and port, or an undefined encapsulation (fill NATAddr/NATPort from the request's source)")
	// ErrFleetKey: a fleet router's write whose key is not its NAI's
	// (binding.FleetKey), or whose NAI does not fit a record: the other
	// members would file it under another binding.
	ErrFleetKey = errors.New("hasync: RegisterNAI/DeregisterNAI: the entry's Key is not binding.FleetKey of its NAI, or the NAI is longer than MaxRecNAI (a bug in the caller)")
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
	pidx  map[pkey]int32
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
		pidx:  make(map[pkey]int32, cfg.MaxPending),
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

// Start begins operation at now: it multicasts a Binding Table Request
// (claims 9-11) and arms the timers. Call it once, before anything else.
func (m *Machine) Start(now int64, out []Action) []Action {
	m.arena = m.arena[:0]
	m.dl = download{active: true}
	m.nextDigest = now + int64(m.cfg.DigestPeriod)
	return m.sendRequest(now, out, true)
}
