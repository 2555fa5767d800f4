// Package console is the protocol between hactl and the running agent: one
// JSON request line over a unix socket, one JSON response line back. The
// agent answers with data; hactl formats it for people (or prints the JSON
// with -json), so scripts and the serial console see the same facts.
package console

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// DefaultSocket is where the agent listens unless the config says otherwise.
const DefaultSocket = "/run/hagent.sock"

// Request is one console command, e.g. {"cmd":"show bindings","args":["192.0.2.10"]}.
type Request struct {
	Cmd   string   `json:"cmd"`
	Args  []string `json:"args,omitempty"`
	Limit int      `json:"limit,omitempty"` // rows for show bindings; 0 = agent default, -1 = all
}

// Response carries exactly one of the payloads, or Error.
type Response struct {
	Error      string      `json:"error,omitempty"`
	Bindings   *Bindings   `json:"bindings,omitempty"`
	Stats      *Stats      `json:"stats,omitempty"`
	Redundancy *Redundancy `json:"redundancy,omitempty"`
	Violations *Violations `json:"violations,omitempty"`
	Info       *Info       `json:"info,omitempty"`
	Message    string      `json:"message,omitempty"`
}

// Binding is one row of `show bindings`. Source and NAI are known on the
// member that accepted the registration; a member that learnt the binding
// from a peer's update leaves them empty.
type Binding struct {
	Home      string `json:"home"`
	CareOf    string `json:"care_of,omitempty"`
	HomeAgent string `json:"home_agent,omitempty"`
	Node      string `json:"node,omitempty"`
	NAI       string `json:"nai,omitempty"`
	Source    string `json:"source,omitempty"` // the request's source address:port
	State     string `json:"state"`            // "live" or "tombstone"
	Granted   uint16 `json:"granted_s"`
	// Remaining: lifetime left; for a tombstone, the time until it is purged.
	Remaining uint32 `json:"remaining_s"`
	Age       uint32 `json:"age_s"`            // since the last accepted (re)registration
	Tunnel    string `json:"tunnel,omitempty"` // "ipip", "gre" (the G bit) or "udp" (RFC 3519); empty for a tombstone
	Flags     string `json:"flags"`            // e.g. "T G" (the request's S B D M G r T x bits)
	ID        uint64 `json:"id"`
	Origin    uint32 `json:"origin"` // agent id of the member that accepted it
	// NAT is a UDP-tunnelled binding's tunnel endpoint: the address:port
	// its registration came from (the NAT's mapping).
	NAT string `json:"nat,omitempty"`
	// Networks: the mobile networks (RFC 5177) routed into its tunnel.
	Networks []string `json:"networks,omitempty"`
}

// Bindings is the payload of `show bindings`. The summary counts cover the
// whole table, whatever the limit or the address asked for.
type Bindings struct {
	Live      int       `json:"live"`
	Tombs     int       `json:"tombstones"`
	Capacity  int       `json:"capacity"`
	TombCap   int       `json:"tombstone_capacity"`
	IPIP      int       `json:"ipip"`             // live bindings tunnelled IP-in-IP
	GRE       int       `json:"gre"`              // live bindings tunnelled in GRE
	UDP       int       `json:"udp"`              // live bindings tunnelled in UDP to a NAT mapping (RFC 3519)
	Reverse   int       `json:"reverse_tunnel"`   // live bindings with the T bit
	Detail    bool      `json:"detail,omitempty"` // one home address was asked for
	Rows      []Binding `json:"rows"`
	Truncated int       `json:"truncated,omitempty"` // rows left out by the limit
}

// Counter is a named counter, in a fixed order so that output is stable.
// Key is the stable snake_case name for scripts; Name the label for people.
type Counter struct {
	Key   string `json:"key,omitempty"`
	Name  string `json:"name"`
	Value uint64 `json:"value"`
	Unit  string `json:"unit,omitempty"` // "bytes": hactl prints MB
}

// CounterGroup is a titled list of counters (updates, downloads, security…).
type CounterGroup struct {
	Key      string    `json:"key"`
	Name     string    `json:"name"`
	Counters []Counter `json:"counters"`
}

// Stats is the payload of `show stats`.
type Stats struct {
	Uptime   string    `json:"uptime"`
	General  []Counter `json:"general"`
	Replies  []Counter `json:"replies"` // per reply code, "0 accepted" …
	Drops    []Counter `json:"drops"`   // per drop reason
	Table    []Counter `json:"table"`
	Runtime  []Counter `json:"runtime"`
	Datapath []Counter `json:"datapath,omitempty"`
	Advert   []Counter `json:"advertisements,omitempty"`
	Notes    []string  `json:"notes,omitempty"`
}

// Redundancy is the payload of `show redundancy`: the election first, then
// the group's members, then the counters grouped.
type Redundancy struct {
	Mode         string         `json:"mode"` // "standalone", "vrrp", "hsrp"
	Role         string         `json:"role"` // "active", "standby", "passive"
	Reason       string         `json:"reason,omitempty"`
	Since        string         `json:"since,omitempty"`
	Serving      bool           `json:"serving"` // answering registrations now
	Synced       bool           `json:"synced"`  // the table is initialized: downloaded from the group (or standalone)
	Election     *Election      `json:"election,omitempty"`
	Replication  *Replication   `json:"replication,omitempty"`
	Peers        []Peer         `json:"peers"`
	AuthFailures []AuthSource   `json:"auth_failures,omitempty"` // sources failing group authentication
	Counters     []CounterGroup `json:"counter_groups"`
}

// Election is the VRRP virtual router or HSRP group this member runs.
type Election struct {
	Protocol       string `json:"protocol"` // "vrrp" or "hsrp"
	Group          int    `json:"group"`    // VRID or HSRP group number
	Interface      string `json:"interface"`
	VirtualAddress string `json:"virtual_address"`
	VirtualMAC     string `json:"virtual_mac"`
	// VirtualMACOwn: VirtualMAC is the interface's own, not a protocol's
	// virtual MAC (use_virtual_mac = false).
	VirtualMACOwn bool   `json:"virtual_mac_is_interface_mac"`
	State         string `json:"state"`    // the protocol's own state: Master, Backup, Active, Speak…
	Priority      int    `json:"priority"` // ours now, tracking applied
	// ConfiguredPriority is the priority before tracked interfaces lowered it.
	ConfiguredPriority int    `json:"configured_priority"`
	Master             string `json:"master_address,omitempty"` // the VRRP master / HSRP active router
	MasterLocal        bool   `json:"master_is_local"`
	MasterPriority     int    `json:"master_priority,omitempty"` // 0: not known
	// Timers: VRRP advertisement and master-down intervals, HSRP hello and
	// hold times.
	AdvertInterval     string    `json:"advert_interval,omitempty"`
	MasterDownInterval string    `json:"master_down_interval,omitempty"`
	Hello              string    `json:"hello,omitempty"`
	Hold               string    `json:"hold,omitempty"`
	Preempt            bool      `json:"preempt"`
	PreemptDelay       string    `json:"preempt_delay,omitempty"`
	Tracked            []Tracked `json:"tracked_interfaces,omitempty"`
}

// Tracked is one tracked interface: while it is down it lowers the priority
// by Weight.
type Tracked struct {
	Interface string `json:"interface"`
	Weight    int    `json:"weight"`
	Up        bool   `json:"up"`
}

// Replication is the group protocol's policy and state on this member.
type Replication struct {
	AckBeforeReply     bool  `json:"ack_before_reply"`
	RequireReplication bool  `json:"require_replication"`
	SendKeyID          uint8 `json:"send_key_id"`
	PeersUp            int   `json:"peers_up"`
	PeersAcking        int   `json:"peers_acking"`
	// Heartbeat is how the active member heartbeats, and why: "off",
	// "periodic while active: …" or "demand: …" (the agent's log line
	// at start says the same).
	Heartbeat string `json:"heartbeat,omitempty"`
}

// Flat lists every counter of every group once, each named by its stable
// dotted key ("updates.sent", "security.bad_auth"): what scripts and tests
// compare.
func (r *Redundancy) Flat() []Counter {
	var out []Counter
	for _, g := range r.Counters {
		for _, c := range g.Counters {
			k := g.Key + "." + c.Key
			out = append(out, Counter{Key: k, Name: k, Value: c.Value})
		}
	}
	return out
}

// AuthSource is an address whose group datagrams failed authentication: a
// member with another group key cannot follow the group, and shows here.
type AuthSource struct {
	Address   string `json:"address"`
	ClaimedID uint32 `json:"claimed_agent_id"` // as the last failed datagram said (not authenticated)
	Failures  uint64 `json:"failures"`
	LastSeen  string `json:"last_seen"`
}

// Peer is one Home Agent of the group.
type Peer struct {
	Address   string `json:"address"`
	ID        uint32 `json:"agent_id"`
	State     string `json:"state"` // "up", "down", with ", not initialized"
	LastHeard string `json:"last_heard"`
	// Acking: it acknowledged an update of ours since it came up and has
	// not let one run out of retransmissions since; only such a peer's
	// silence turns a held reply into 130 (docs/redundancy.md).
	Acking bool `json:"acking"`
	// Proven: its current session answered our challenge; until then
	// nothing it sends is applied (docs/hasync-spec.md §3.1).
	Proven bool `json:"proven"`
	// AuthFailures: messages from its address that failed authentication
	// (another group key: it cannot follow the group).
	AuthFailures uint64 `json:"auth_failures"`
	TablesEqual  bool   `json:"tables_equal"` // the last digest exchange found equal tables
	Bindings     int    `json:"bindings"`     // live bindings in our table that it accepted
	Pending      int    `json:"pending"`      // our updates waiting for its acknowledgement
}

// Violation is one registration refused for failed authentication.
type Violation struct {
	Time   string `json:"time"` // UTC, RFC 3339 with milliseconds
	Source string `json:"source"`
	Home   string `json:"home"`
	NAI    string `json:"nai,omitempty"`
	SPI    uint32 `json:"spi"`
	Reason string `json:"reason"`
}

// Violations is the payload of `show violations`: the most recent
// authentication failures, newest first, from a bounded ring.
type Violations struct {
	Total    uint64      `json:"total"`    // since start
	Capacity int         `json:"capacity"` // the ring's size
	Rows     []Violation `json:"rows"`
}

// Info is the payload of `show version` / `show agent`.
type Info struct {
	Version   string `json:"version"`
	Address   string `json:"address"`
	Virtual   string `json:"virtual_address,omitempty"`
	Interface string `json:"interface"`
	Config    string `json:"config"`
	AgentID   uint32 `json:"agent_id"`
	Nodes     int    `json:"nodes"`
	// Advert describes the agent advertisements (name, value), empty when
	// [advertise] is off.
	Advert [][2]string `json:"advertisement,omitempty"`
}

// Call sends one request to the agent at socket and returns its response.
func Call(socket string, req Request, timeout time.Duration) (*Response, error) {
	c, err := net.DialTimeout("unix", socket, timeout)
	if err != nil {
		return nil, fmt.Errorf("console: cannot reach the agent at %s: %w (is hagent running? is -socket right?)", socket, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("console: sending to %s: %w", socket, err)
	}
	r := bufio.NewReaderSize(c, 64<<10)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("console: reading the answer from %s: %w", socket, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("console: bad answer from %s: %w", socket, err)
	}
	return &resp, nil
}
