// Package role is the one vocabulary the agent understands for "what may this
// Home Agent do right now", whichever redundancy protocol (VRRPv3 or HSRPv1)
// elects it. The protocol packages map their own states onto Role; the agent
// only ever sees Change values.
//
// Mapping (see docs/redundancy.md for the full table and the patent's states):
//
//	VRRP Master, HSRP Active                     → Active
//	VRRP Backup, HSRP Listen/Speak/Standby       → Standby
//	VRRP Initialize, HSRP Initial/Learn, or any
//	non-active state while held (table not yet
//	initialized from the group)                  → Passive
package role

import (
	"context"
	"net/netip"
)

// Role is what the agent may do.
type Role uint8

const (
	// Passive: not running, or not yet initialized from the group (patent:
	// "learn"/"passive"). Answers nothing, must not take the virtual address.
	Passive Role = iota
	// Standby: a member that receives the group's updates and keeps a full
	// table but answers nothing on the virtual address (patent: standby,
	// listen).
	Standby
	// Active: owns the virtual address, answers registrations, programs the
	// datapath, sends binding updates (patent: active).
	Active
)

func (r Role) String() string {
	switch r {
	case Passive:
		return "passive"
	case Standby:
		return "standby"
	case Active:
		return "active"
	}
	return "invalid"
}

// Change is one role transition, delivered to the agent in order.
type Change struct {
	Role     Role
	Protocol string // "vrrp" or "hsrp"
	State    string // the protocol's own state name, e.g. "Master", "Speak"
	Reason   string // why, for the console log and `hactl show redundancy`
	// Peer is the address of the router whose message caused the change
	// (invalid when a timer or a local event caused it).
	Peer netip.Addr
}

// Elector is what the agent consumes; vrrp.Runner and hsrp.Runner implement
// it. All methods except Run are safe to call from any goroutine.
type Elector interface {
	// Run owns the socket and the protocol state until ctx is done, then
	// resigns (VRRP priority 0 / HSRP Resign) and releases the address.
	Run(ctx context.Context) error
	// Changes delivers every role change. The channel is buffered; the
	// runner never blocks on it (a full channel drops the oldest pending
	// change, the latest is always delivered).
	Changes() <-chan Change
	// Current is the latest role (also before Run).
	Current() Change
	// SetHold(true) while the agent has not yet downloaded the group's table:
	// the protocol must not become active while another member could serve.
	SetHold(hold bool)
	// SetPriority applies tracking (link down lowers priority by a weight).
	SetPriority(p uint8)
	// Announce sends gratuitous ARP for extra addresses (the away mobile
	// nodes' home addresses) from the interface, with the configured
	// count/repeat. Only meaningful while Active; returns an error otherwise.
	Announce(addrs []netip.Addr) error
}
