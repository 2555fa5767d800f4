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
	Info       *Info       `json:"info,omitempty"`
	Message    string      `json:"message,omitempty"`
}

// Binding is one row of `show bindings`.
type Binding struct {
	Home      string `json:"home"`
	CareOf    string `json:"care_of,omitempty"`
	HomeAgent string `json:"home_agent,omitempty"`
	Node      string `json:"node,omitempty"`
	State     string `json:"state"` // "live" or "tombstone"
	Granted   uint16 `json:"granted_s"`
	Remaining uint32 `json:"remaining_s"` // lifetime left; for a tombstone, time until purge
	Flags     string `json:"flags"`       // e.g. "T G" (the request's S B D M G r T x bits)
	ID        uint64 `json:"id"`
	Origin    uint32 `json:"origin"`
}

// Bindings is the payload of `show bindings`.
type Bindings struct {
	Live      int       `json:"live"`
	Tombs     int       `json:"tombstones"`
	Capacity  int       `json:"capacity"`
	TombCap   int       `json:"tombstone_capacity"`
	Rows      []Binding `json:"rows"`
	Truncated int       `json:"truncated,omitempty"` // rows left out by the limit
}

// Counter is a named counter, in a fixed order so that output is stable.
type Counter struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
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

// Redundancy is the payload of `show redundancy`.
type Redundancy struct {
	Mode    string    `json:"mode"` // "standalone", "vrrp", "hsrp"
	Role    string    `json:"role"`
	Reason  string    `json:"reason,omitempty"`
	Since   string    `json:"since,omitempty"`
	Synced  bool      `json:"synced"`
	Peers   []Peer    `json:"peers,omitempty"`
	Counter []Counter `json:"counters,omitempty"`
}

// Peer is one Home Agent of the group.
type Peer struct {
	Address   string `json:"address"`
	ID        uint32 `json:"id"`
	State     string `json:"state"`
	LastHeard string `json:"last_heard"`
	InSync    bool   `json:"in_sync"` // the last digest exchange found equal tables
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
