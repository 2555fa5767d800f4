// Package agent is the Home Agent's owner: the registration decision logic
// (Core, pure and allocation-free) and the runner that wires sockets, timers
// and the console to it (Agent).
package agent

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/hasync"
	"github.com/hagent/hagent/ha/mip"
)

// ReplyBufLen is the reply buffer a caller of Handle provides: 20 fixed
// bytes + an NAI extension (≤ 257) + the MN-HA extension (22) fit.
const ReplyBufLen = 512

// fixedLen is the length of a registration request's fixed part (RFC 5944 §3.3).
const fixedLen = 24

// ChangeKind says what a handled request or timer did to the binding table.
type ChangeKind uint8

const (
	NoChange     ChangeKind = iota
	Registered              // a new binding
	Renewed                 // an existing binding refreshed (care-of may have changed)
	Deregistered            // the node de-registered (lifetime 0 or care-of = home)
	Expired                 // lifetime ran out
	Cleared                 // removed by the operator
	Withdrawn               // not written: the kernel refused its add, and drops what it may have left
	Revoked                 // a reload took away its node's authorization (revoke.go)
)

func (k ChangeKind) String() string {
	switch k {
	case Registered:
		return "registered"
	case Renewed:
		return "renewed"
	case Deregistered:
		return "deregistered"
	case Expired:
		return "expired"
	case Cleared:
		return "cleared"
	case Withdrawn:
		return "withdrawn"
	case Revoked:
		return "revoked"
	}
	return "none"
}

// Change is what the redundancy protocol and the datapath need to hear about
// a table change. It is a value (no pointers into the table), so it can be
// queued after the table has moved on.
type Change struct {
	Kind  ChangeKind
	Entry binding.Entry
	// Moved: the kernel's view changes (new binding, other care-of address
	// or flags). A plain renewal leaves the tunnel route as it is.
	Moved bool
	// Dup: no change (Kind is NoChange), but the reply accepts a
	// retransmission of the request that wrote Entry. Its answer needs the
	// same proof of replication as the first one: the first reply may have
	// been a denial because no peer acknowledged the write.
	Dup bool
	// Gone: mobile networks the kernel must stop routing besides what
	// Kind implies (a renewal that dropped some, a write not made).
	Gone netList
}

// node is the run-time state of one configured [[node]] entry.
type node struct {
	cfg    *config.Node
	mac    hash.Hash // keyed HMAC-MD5, reused: hmac.New allocates, Reset does not
	home   uint32    // fixed home address, 0 for a pool
	lo, hi uint32    // pool bounds (inclusive), 0/0 for a fixed address
	single bool      // one mobile node (fixed address or NAI): replay state lives here
	lastID uint64    // highest accepted Identification (timestamp replay protection)
	nonce  uint32    // nonce replay protection: what the node must echo next
	nonceM bool
	maxLt  uint16
	revTun bool
	gen    uint32 // key generation: a verdict is sealed only with the key it was decided under

	udpTun bool // its UDP Tunnel Request is answered (nat.go)

	// A router of a fleet on a shared home address (fleet.go): its
	// binding's key (binding.FleetKey of nai) and its NAI; 0 and nil for
	// every other node.
	fleet uint64
	nai   []byte
}

type fa struct {
	mac hash.Hash
	spi uint32
}

// Core decides registrations. It is pure: no sockets, no clocks (callers
// pass monotonic and wall time), no goroutines, and it allocates nothing per
// request. The agent's owner goroutine is its only user.
type Core struct {
	cfg    *config.Config
	nodes  []node
	byHome map[uint32]int32 // fixed home address → node; map reads with integer keys do not allocate
	byNAI  map[string]int32 // m[string(b)] with b []byte does not allocate
	pools  []int32          // nodes with a pool, scanned in order (configs have few)
	fas    map[uint32]*fa
	table  *binding.Table

	addr, vaddr  uint32 // own and virtual address
	netLo, netHi uint32 // the home network's network and broadcast addresses
	id           uint32 // agent identifier in the group
	maxLt        uint16
	tombLife     int64
	tolerance    int64 // seconds
	simul        bool
	revTun       bool
	gre          bool
	greKernel    bool // the datapath can carry GRE (true without a datapath)
	udpKernel    bool // the datapath can carry the RFC 3519 UDP tunnel (true without a datapath)
	udp          bool // the request being decided is UDP-tunnelled (nat.go)
	noIPIPKernel bool // the datapath has no IP-in-IP device: only UDP tunnels (nat.go)

	// Group mode: every table write goes through the group machine, which
	// multicasts it (claims 1, 23); acts collects what it asks the owner to
	// send after each call. nil group: a standalone agent writes directly.
	group *hasync.Machine
	acts  []hasync.Action
	// Staged writes (stage.go): with stage, Handle records its write in
	// *staged instead of making it; pend are the batch's staged writes a
	// later decision must not read past (suspended: it stopped there).
	stage     bool
	staged    *intent
	suspended bool
	pend      []pendRef
	// serving is false while this agent must not answer registrations
	// (standby or passive in its redundancy group).
	serving bool

	Stats   Stats
	viol    violations // the last authentication failures (show violations)
	scratch [64]byte
	req     mip.Request
	v       *Verdict  // the verdict Handle is filling (the caller's)
	rep     mip.Reply // Seal's encoding of a verdict
	// The request Handle is deciding: its phases read these rather than
	// pass them along (fewer arguments on the registration path).
	rq    reqCtx
	gens  uint32 // the last key generation given out (verdict.go)
	epoch uint32 // the node list's version: a verdict of an older one finds its node again
	// revoke lists the bindings the last Reload took the authorization of;
	// Revoke removes them (it needs the clock Reload does not have).
	revoke []revocation
	// claims: the mobile networks of shared pools' bindings
	// (mobilenet_claims.go); nil when no such pool has networks
	claims     *claimIndex
	claimsLive func(home, addr uint32, bits uint8) bool
	ClaimsFull uint64 // claims not indexed: the index was full of live ones
}

// NewCore builds the run-time indexes from a validated config and allocates
// the binding table at its full capacity.
func NewCore(cfg *config.Config) (*Core, error) {
	a := &cfg.Agent
	c := &Core{
		cfg:       cfg,
		table:     binding.New(a.Capacity, a.TombstoneCapacity),
		addr:      binding.AddrU32(a.Address),
		id:        a.AgentID,
		serving:   true,
		greKernel: true,
		udpKernel: true,
		pend:      make([]pendRef, 0, batchSize),
	}
	if a.VirtualAddress.IsValid() {
		c.vaddr = binding.AddrU32(a.VirtualAddress)
	}
	c.netLo, c.netHi = prefixBounds(a.HomeNetwork)
	c.setPolicy(a)
	if err := c.setNodes(cfg); err != nil {
		return nil, err
	}
	c.sizeClaims()
	return c, nil
}

// prefixBounds returns the first and last address of p as uint32.
func prefixBounds(p netip.Prefix) (lo, hi uint32) {
	lo = binding.AddrU32(p.Masked().Addr())
	if p.Bits() >= 32 {
		return lo, lo
	}
	return lo, lo | ^uint32(0)>>uint(p.Bits())
}

// setNodes (re)builds the per-node state and indexes from cfg: the
// mobility security associations, pools and foreign agents. Replay state
// (last accepted identification, nonce) carries over for nodes whose name
// stays, so a reload cannot reopen a replay window.
func (c *Core) setNodes(cfg *config.Config) error {
	old := make(map[string]*node, len(c.nodes))
	for i := range c.nodes {
		if c.nodes[i].cfg != nil {
			old[c.nodes[i].cfg.Name] = &c.nodes[i]
		}
	}
	c.nodes = make([]node, len(cfg.Nodes))
	c.byHome = make(map[uint32]int32)
	c.byNAI = make(map[string]int32)
	c.pools = c.pools[:0]
	c.fas = make(map[uint32]*fa)
	for i := range cfg.Nodes {
		n := &cfg.Nodes[i]
		st := &c.nodes[i]
		st.cfg = n
		st.mac = mip.NewHMACMD5(n.Key)
		st.maxLt = n.MaxLifetime
		st.revTun = n.ReverseTunnel // effective only with agent.reverse_tunnel too (checked in Handle)
		st.nonceM = n.Replay == "nonce"
		st.udpTun = n.UDPTunnel && cfg.NAT.UDPTunnel
		if st.nonceM {
			st.nonce = randUint32()
		}
		if n.HomeAddress.IsValid() {
			st.home = binding.AddrU32(n.HomeAddress)
			st.single = true
			if c.fleetNode(st, cfg) {
				// one of many entries with this home address: found by its NAI
			} else if _, dup := c.byHome[st.home]; dup {
				return fmt.Errorf("agent: node %q: home address %s configured twice; the config check should have caught this", n.Name, n.HomeAddress)
			} else {
				c.byHome[st.home] = int32(i)
			}
		} else if n.Pool.IsValid() {
			st.lo, st.hi = prefixBounds(n.Pool)
			c.pools = append(c.pools, int32(i))
		}
		if n.NAI != "" {
			st.single = true
			c.byNAI[n.NAI] = int32(i)
		}
	}
	for i := range cfg.ForeignAgents {
		f := &cfg.ForeignAgents[i]
		c.fas[binding.AddrU32(f.Address)] = &fa{mac: mip.NewHMACMD5(f.Key), spi: f.SPI}
	}
	// A key keeps its generation across a reload, whichever node carries
	// it: what was decided under it may still be sealed with it.
	gens := make(map[string]uint32, len(old))
	for _, o := range old {
		gens[keyIdentity(o.cfg)] = o.gen
	}
	c.epoch++
	for i := range c.nodes {
		n := &c.nodes[i]
		if o := old[n.cfg.Name]; o != nil {
			n.lastID = o.lastID
			if n.nonceM && o.nonceM {
				n.nonce = o.nonce
			}
		}
		if g, ok := gens[keyIdentity(n.cfg)]; ok {
			n.gen = g
		} else {
			c.gens++
			n.gen = c.gens
			gens[keyIdentity(n.cfg)] = n.gen
		}
	}
	return nil
}

// keyIdentity is what makes two nodes' keys the same key: SPI and secret.
func keyIdentity(n *config.Node) string {
	return fmt.Sprintf("%d/%x", n.SPI, n.Key)
}

func randUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux ≥ 3.17
	return binary.BigEndian.Uint32(b[:])
}

// SetGroup hands table writes to the group machine (which must have been
// built on c.Table()).
func (c *Core) SetGroup(m *hasync.Machine) { c.group = m; c.acts = make([]hasync.Action, 0, 64) }

// SetServing opens or closes the registration service: a standby or passive
// member of a group receives the group's updates but answers nobody.
func (c *Core) SetServing(on bool) { c.serving = on }

// Serving reports whether registrations are answered.
func (c *Core) Serving() bool { return c.serving }

// Table exposes the binding table to the owner loop (console dumps, expiry).
func (c *Core) Table() *binding.Table { return c.table }

// ownAddr reports whether a is an address registrations may be sent to.
func (c *Core) ownAddr(a uint32) bool { return a == c.addr || (c.vaddr != 0 && a == c.vaddr) }

// lookup finds the configured node: by NAI first (RFC 2794: the node may
// not know its home address yet), then by home address or pool, so that a
// client which always sends its NAI still matches a node configured by
// address only. -1 when none matches.
func (c *Core) lookup(nai []byte, home uint32) int32 {
	if nai != nil {
		if i, ok := c.byNAI[string(nai)]; ok {
			return i
		}
	}
	if i, ok := c.byHome[home]; ok {
		return i
	}
	for _, pi := range c.pools {
		if p := &c.nodes[pi]; p.cfg.NAI == "" && home >= p.lo && home <= p.hi {
			return pi
		}
	}
	return -1
}

// poolAssign finds an address for a NAI node with a pool: the one it holds
// already, else the first free one. O(pool size), only on first contact.
func (c *Core) poolAssign(n *node) uint32 {
	for a := n.lo; ; a++ {
		if a != n.lo && a != n.hi || n.lo == n.hi { // skip network and broadcast addresses of the pool
			if e := c.table.Get(a); e != nil && !e.Tombstone() && e.Node >= 0 && &c.nodes[e.Node] == n {
				return a
			}
		}
		if a == n.hi {
			break
		}
	}
	for a := n.lo; ; a++ {
		if a != n.lo && a != n.hi || n.lo == n.hi {
			if e := c.table.Get(a); e == nil || e.Tombstone() {
				if _, fixed := c.byHome[a]; !fixed && !c.ownAddr(a) {
					return a
				}
			}
		}
		if a == n.hi {
			break
		}
	}
	return 0
}

// Expire drops bindings whose lifetime has run out and purges old
// tombstones; fn hears about each expired live binding (not about purged
// tombstones: they were never bindings).
func (c *Core) Expire(now int64, fn func(Change)) int {
	return c.table.Expire(now, func(e *binding.Entry) {
		if e.Tombstone() {
			return
		}
		c.Stats.Expired++
		if fn != nil {
			fn(Change{Kind: Expired, Entry: *e})
		}
	})
}

// Clear removes a binding on the operator's request.
func (c *Core) Clear(now int64, home netip.Addr) (Change, bool) {
	return c.clearKey(now, binding.AddrU32(home), 0, nil)
}

// clearKey is Clear for the binding of home and key (a fleet router's,
// with NAI nai, when key is not 0).
func (c *Core) clearKey(now int64, home uint32, key uint64, nai []byte) (Change, bool) {
	e := c.table.GetKey(home, key)
	if e == nil || e.Tombstone() {
		return Change{}, false
	}
	ch := Change{Kind: Cleared, Entry: *e}
	if c.group != nil {
		// A local delete would come back from the group's anti-entropy: the
		// operator's clear is a de-registration the group hears about,
		// versioned just above the binding it removes.
		c.acts, _ = c.group.DeregisterNAI(now, home, nai, ch.Entry.ID+1, c.acts)
	} else {
		c.table.DeleteKey(home, key)
	}
	c.Stats.Cleared++
	return ch, true
}

// NodeName returns the configured name of node i, for console output.
func (c *Core) NodeName(i int32) string {
	if i < 0 || int(i) >= len(c.nodes) {
		return ""
	}
	return c.nodes[i].cfg.Name
}

// Reload applies a new configuration: mobility
// security associations (nodes, pools, keys, foreign agents), lifetimes,
// replay tolerance, the offered services, the group keys and
// group.require_replication. Settings that shape sockets, devices,
// the preallocated table or the group (addresses, interface, capacity,
// encapsulations, [group], [vrrp], [hsrp], [datapath], [advertise]) need a restart: a
// reload that changes any of them (config.RestartNeeded judges) is refused
// as a whole, naming them, and nothing changes. Bindings stay, except those whose node the new
// configuration no longer authorizes (revoke.go): the caller removes them
// with Revoke right after.
func (c *Core) Reload(cfg *config.Config) error {
	if what := config.RestartNeeded(c.cfg, cfg); len(what) > 0 {
		return fmt.Errorf("agent: reload refused: %s changed, which needs a restart of hagent; nothing was applied", strings.Join(what, ", "))
	}
	oldNames := make([]string, len(c.nodes))
	for i := range c.nodes {
		oldNames[i] = c.nodes[i].cfg.Name
	}
	if c.group != nil && config.GroupKeysChanged(&c.cfg.Group, &cfg.Group) {
		// Checked first so that a bad key set refuses the whole reload.
		if err := c.group.SetKeys(groupKeys(&cfg.Group), cfg.Group.KeyID); err != nil {
			return fmt.Errorf("agent: reload refused: %w; nothing was applied", err)
		}
	}
	prev := c.nodes
	if err := c.setNodes(cfg); err != nil {
		return err
	}
	c.revoke = c.revocations(prev, c.revoke[:0])
	newIdx := make(map[string]int32, len(c.nodes))
	for i := range c.nodes {
		newIdx[c.nodes[i].cfg.Name] = int32(i)
	}
	// Bindings keep pointing at their node by name; one whose node was
	// removed is in c.revoke, for Revoke to remove.
	c.table.Range(func(e *binding.Entry) bool {
		if e.Node >= 0 && int(e.Node) < len(oldNames) {
			if j, ok := newIdx[oldNames[e.Node]]; ok {
				e.Node = j
			} else {
				e.Node = -1
			}
		}
		return true
	})
	c.cfg = cfg
	c.setPolicy(&cfg.Agent)
	c.sizeClaims()
	return nil
}

// setPolicy applies the agent-wide settings a reload may change: lifetimes,
// replay tolerance and the services offered to mobile nodes.
func (c *Core) setPolicy(a *config.Agent) {
	c.maxLt = a.MaxLifetime
	c.tombLife = int64(a.TombstoneLifetime)
	c.tolerance = max(int64(a.ReplayTolerance/time.Second), 1)
	c.simul = a.SimultaneousBindings
	c.revTun = a.ReverseTunnel
	c.gre = c.greKernel && slices.Contains(a.Encapsulations, "gre") // offered only when the kernel can carry it
}

// SetKernelGRE records whether the datapath can carry GRE; without it a
// request with the G bit gets 139, also after a reload.
func (c *Core) SetKernelGRE(ok bool) {
	c.greKernel = ok
	c.setPolicy(&c.cfg.Agent)
}
