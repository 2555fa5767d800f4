// Package config reads /etc/hagent.toml: TOML → raw values as written (with
// their lines) → a validated Config with netip addresses, durations and
// decoded keys. It is strict: unknown keys, wrong types and out-of-range
// values are errors that name the file, the line and the key, and all of
// them are reported at once, sorted by line. docs/config.md is the reference
// for every key; rootfs/etc/hagent.toml is the shipped example.
package config

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/BurntSushi/toml"
)

// Defaults for keys left out of the file. docs/config.md lists the same
// values; a test keeps the two in step with rootfs/etc/hagent.toml.
const (
	DefaultListenPort        = 434
	DefaultCapacity          = 10000
	MaxCapacity              = 4_000_000
	MinTombstoneCapacity     = 64
	DefaultTombstoneLifetime = 5 * time.Minute
	DefaultMaxLifetime       = 1800
	// MaxFiniteLifetime is the longest lifetime agent.max_lifetime may
	// grant: 0xffff means infinity on the wire (RFC 5944 §3.4).
	MaxFiniteLifetime      = 65534
	DefaultReplayTolerance = 7 * time.Second // RFC 5944 §5.7 suggests 7 s
	DefaultConsoleSocket   = "/run/hagent.sock"
	MinSPI                 = 256 // SPIs 0–255 are reserved (RFC 5944 §3.5.1)
	DefaultAlgorithm       = "hmac-md5"
	DefaultReplay          = "timestamp"

	// The group protocol has no IANA assignment. Its default is an
	// unassigned address of the Local Network Control Block (224.0.0.0/24,
	// RFC 5771): routers never forward it whatever the TTL, and messages
	// are sent with TTL 255 and refused otherwise (as VRRP does), which
	// proves the sender is on the home link.
	DefaultGroupAddress       = "224.0.0.240"
	DefaultGroupPort          = 4343
	DefaultGroupKeyID         = 1
	DefaultGroupAckTimeout    = 250 * time.Millisecond
	DefaultGroupMaxRetries    = 5
	DefaultGroupMaxMembers    = 16
	DefaultGroupAntiEntropy   = 30 * time.Second
	DefaultVRID               = 1
	DefaultVRRPPriority       = 100 // RFC 5798 §6.1
	DefaultVRRPAdvertInterval = time.Second
	DefaultGARPCount          = 3
	DefaultGARPInterval       = time.Second
	DefaultHSRPPriority       = 100
	DefaultHSRPHello          = 3 * time.Second  // RFC 2281 §5
	DefaultHSRPHold           = 10 * time.Second // RFC 2281 §5
	DefaultHSRPAuth           = "cisco"          // RFC 2281 §5
	DefaultTunnelDevice       = "mip0"
	DefaultRouteProtocol      = 77 // unassigned; 186 is RTPROT_BGP (FRR), see validate.go
	DefaultReconcileInterval  = 30 * time.Second
	ProxyARPEntries           = "entries"
	ProxyARPInterface         = "interface"
	ProxyEntriesAdvice        = 20_000 // above this capacity, "entries" draws a warning
	DefaultAdvertInterval     = 3 * time.Second
	DefaultAdvertLifetime     = 9 * time.Second
	DefaultAdvertDestination  = "224.0.0.1"
	DefaultEncapsulation      = "ipip"
	maxKeyBytes               = 256
	recommendedMinKeyBytes    = 16
	ifNameMax                 = 15 // IFNAMSIZ - 1
	unixPathMax               = 107
)

// Config is a validated configuration. Every field holds a usable value:
// defaults are filled in, addresses are IPv4, durations are in range.
type Config struct {
	Path          string         // the name the config was read from
	Agent         Agent          // [agent]
	Nodes         []Node         // [[node]]
	ForeignAgents []ForeignAgent // [[foreign_agent]] FA-HA security associations (optional)
	Group         Group          // [group] the seeds' binding-table group protocol
	VRRP          VRRP           // [vrrp]
	HSRP          HSRP           // [hsrp]
	Datapath      Datapath       // [datapath]
	Advert        Advert         // [advertise]
	NAT           NAT            // [nat] RFC 3519 NAT traversal (UDP tunnelling)

	// Warnings are advice that does not stop the agent (a short key, ...);
	// the daemon logs them at start and `hagent -check` prints them.
	Warnings []string
}

// Agent is [agent]: this Home Agent.
type Agent struct {
	Interface            string        // home interface, required
	Address              netip.Addr    // this Home Agent's own address, required, IPv4
	VirtualAddress       netip.Addr    // the group's shared address; invalid = none
	HomeNetwork          netip.Prefix  // required; Address and VirtualAddress lie inside
	ListenPort           uint16        // default 434
	Capacity             int           // max live bindings, default 10000, 1..4_000_000
	TombstoneCapacity    int           // default (or 0) max(Capacity/4, 64)
	TombstoneLifetime    time.Duration // default 5m, 1s..24h
	MaxLifetime          uint16        // seconds, default 1800, 1..65534 (never 0xffff, infinity)
	ReplayTolerance      time.Duration // default 7s, 1s..1h
	SimultaneousBindings bool          // default false: S bit → reply code 1
	ReverseTunnel        bool          // default true (RFC 3024)
	Encapsulations       []string      // default ["ipip"]; of "ipip", "gre" (no "minimal": the datapath lacks it)
	ConsoleSocket        string        // default "/run/hagent.sock"
	LogLevel             slog.Level    // default info
	AgentID              uint32        // default (or 0) = Address as a big-endian uint32
	MemoryLimitMiB       int           // Go heap soft limit (runtime/debug.SetMemoryLimit); 0 = none; 0..65536
	SharedHomeAddresses  []netip.Addr  // a fleet's dummy home addresses (validate_fleet.go); nil: none
}

// Node is one [[node]]: a mobile node, or a pool of them sharing one key.
// Exactly one of HomeAddress and Pool is valid.
type Node struct {
	Name          string       // default "node<N>", N = 1-based position in the file
	HomeAddress   netip.Addr   // a single home address, or ...
	Pool          netip.Prefix // ... a pool: addresses assigned (with NAI) or accepted from it
	NAI           string       // RFC 2794, optional, unique (case-insensitive)
	SPI           uint32       // required, >= 256
	Key           []byte       // required, 1..256 bytes (16..64 recommended)
	Algorithm     string       // "hmac-md5"
	Replay        string       // "timestamp" (default) or "nonce"
	MaxLifetime   uint16       // per-node cap in seconds; 0 = the agent's
	ReverseTunnel bool         // default true: honour the T bit for this node
	Line          int          // line of its [[node]] header, for later messages

	// MobileNetworks (RFC 5177) are the networks behind this mobile
	// router: what its registrations may claim (explicit mode: a prefix
	// equal to or inside one of them) and, for an entry that is one router
	// (ImplicitMobileNetworks), what is routed when it claims none
	// (implicit mode). Valid, masked, IPv4, disjoint from one another,
	// from agent.home_network and from every other entry's. nil: none.
	MobileNetworks []netip.Prefix
	// MaxMobileNetworks is how many prefixes one router of this entry may
	// have routed at once: default and at most MaxMobileNetworks (8).
	MaxMobileNetworks int
	// UDPTunnel: RFC 3519 UDP tunnelling is offered to this node (its UDP
	// Tunnel Request is answered). Default NAT.UDPTunnel; never true while
	// NAT.UDPTunnel is false.
	UDPTunnel bool
}

// ForeignAgent is one [[foreign_agent]]: an FA-HA security association.
type ForeignAgent struct {
	Address   netip.Addr
	SPI       uint32
	Key       []byte
	Algorithm string
	Line      int
}

// Group is [group]: the binding-table group protocol of the seeds.
type Group struct {
	Enabled             bool
	Address             netip.Addr    // multicast group, default 224.0.0.240
	Port                uint16        // default 4343
	Peers               []netip.Addr  // if set: unicast to these instead of multicast
	Key                 []byte        // required when enabled: group messages are authenticated
	KeyID               uint8         // default 1; lets a group roll keys
	AckTimeout          time.Duration // wait for an ack before the first retransmission, default 250ms
	MaxRetries          int           // then the peer is marked down, default 5
	MaxMembers          int           // members of the group, this one included, default 16: further agent ids are refused
	AntiEntropyInterval time.Duration // periodic table digest exchange, default 30s
	AckBeforeReply      bool          // hold a registration reply until a peer acknowledged the update, default true
	AcceptKeys          []GroupKey    // [[group.accept_keys]]: also accepted, never sent (key rotation)
	// RequireReplication: never answer "accepted" to a table change that no
	// peer acknowledged, not even with no peer up (default false: a member
	// that every peer left serves alone). Reloadable.
	RequireReplication bool
	// Heartbeat: a BFD-like liveness signal inside the group protocol
	// (default on): a peer silent for HeartbeatMultiplier ×
	// HeartbeatInterval is down, and no acknowledgement from it is waited
	// for. HeartbeatFailover also lets the election take over as soon as
	// the active member's heartbeat stops.
	Heartbeat           bool
	HeartbeatInterval   time.Duration // default 100ms
	HeartbeatMultiplier int           // default 3
	HeartbeatFailover   bool          // default true
}

// VRRP is [vrrp]: VRRPv3 (RFC 5798) for the virtual address.
type VRRP struct {
	Enabled         bool
	VRID            uint8         // default 1
	Priority        uint8         // default 100 (255 when the agent owns the address)
	AdvertInterval  time.Duration // default 1s, 10ms..40.95s in centiseconds
	Preempt         bool          // default true
	PreemptDelay    time.Duration // default 0
	Accept          bool          // default true: registrations arrive for the virtual address
	GARPCount       int           // gratuitous ARPs sent back-to-back on becoming master, default 3
	GARPInterval    time.Duration // delay before a second burst of GARPCount, default 1s; 0 = none
	TrackInterfaces []Track
	NotifyCommand   string // optional, absolute path; run with the new state as argument
	UseVirtualMAC   bool   // default false: the interface's own MAC; true: 00-00-5E-00-01-{VRID} (RFC 5798 §7.3)
	Reclaim         Reclaim
}

// GroupKey is one [[group.accept_keys]] entry: a key the group may still
// (or already) send with while keys rotate.
type GroupKey struct {
	ID  uint8
	Key []byte
}

// Track is one vrrp.track_interfaces entry.
type Track struct {
	Interface string
	Weight    int // 0 = resign when the interface is down; N = lower priority by N
}

// HSRP is [hsrp]: HSRPv1 (RFC 2281) for the virtual address.
type HSRP struct {
	Enabled  bool
	Group    uint8 // default 0
	Priority uint8 // default 100
	// Hello, Hold: whole seconds 1s..255s, Hold > Hello; both 0 when
	// neither key is set: learnt from the active router (RFC 2281 §5.1),
	// 3 s / 10 s until then. One key set: the other is its default.
	Hello, Hold   time.Duration
	Preempt       bool   // default false (RFC 2281)
	Auth          string // <= 8 bytes, default "cisco"
	UseVirtualMAC bool   // default true: answer with 00:00:0c:07:ac:<group> (RFC 2281 §6.1); false: the interface's own MAC
	Reclaim       Reclaim
}

// Datapath is [datapath]: kernel programming of tunnels and routes.
type Datapath struct {
	Enabled           bool          // default true
	TunnelDevice      string        // default "mip0"
	RouteProtocol     uint8         // rtm_protocol of our routes, default 77; not a value another daemon uses
	ProxyARP          bool          // default true (RFC 5944 §4.6)
	ProxyARPMode      string        // "entries" (default): one NTF_PROXY entry per node; "interface": proxy_arp on the home interface
	ReverseCheck      bool          // default true: reverse-tunnelled packets only from their binding's care-of (RFC 3024 §5.2)
	TunnelDF          bool          // default true: outer Don't Fragment on IP-in-IP and GRE (RFC 2003 §3.1)
	SendRedirects     bool          // default false: ICMP redirects off in the agent's namespace; true leaves the host's settings
	ReconcileInterval time.Duration // default 30s, 1s..1h
}

// Advert is [advertise]: agent advertisements on the home link (RFC 5944 §2.1).
type Advert struct {
	Enabled     bool          // default false
	Interval    time.Duration // default 3s, 1s..30m, whole seconds
	Lifetime    time.Duration // default max(9s, 3 × Interval), >= Interval, <= 65535s, whole seconds
	Destination netip.Addr    // 224.0.0.1 (default) or 255.255.255.255
}

// Load reads and validates the configuration file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot read: " + pathErr(err) + " (give the path of the configuration file)"}
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, int64(maxFileBytes)+1)); err != nil {
		return nil, &Error{File: path, Msg: "cannot read: " + pathErr(err)}
	}
	return Parse(path, buf.Bytes())
}

// Parse validates a configuration held in data; name is used in messages.
// The error, if any, joins one *Error per problem (see Errors).
func Parse(name string, data []byte) (*Config, error) {
	d := &decoder{file: name}
	if e := checkBounds(data); e != nil {
		d.errorf(e.line, "", "%s", e.msg)
		return nil, joinSorted(d.errs)
	}
	var doc map[string]any
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			d.syntaxError(data, pe)
		} else {
			d.errorf(0, "", "TOML syntax error: %v", err)
		}
		return nil, joinSorted(d.errs)
	}
	d.pos = scanPositions(data)
	cfg := d.build(readRaw(d, doc))
	if len(d.errs) > 0 {
		return nil, joinSorted(d.errs)
	}
	cfg.Path = name
	cfg.Warnings = d.warnings
	return cfg, nil
}

// pathErr drops the path from an *fs.PathError: Error already names the file.
func pathErr(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
