package config

// Raw sections: values exactly as written, each with its key and line.

type rawConfig struct {
	Agent         rawAgent
	AgentLine     int
	AgentPresent  bool
	Nodes         []rawNode
	ForeignAgents []rawFA
	Group         rawGroup
	VRRP          rawVRRP
	HSRP          rawHSRP
	Datapath      rawDatapath
	Advert        rawAdvert
	NAT           rawNAT
}

type rawAgent struct {
	Interface, Address, VirtualAddress, HomeNetwork field[string]
	ListenPort, Capacity, TombstoneCapacity         field[int64]
	TombstoneLifetime, ReplayTolerance              field[string]
	MaxLifetime, AgentID                            field[int64]
	MemoryLimitMiB                                  field[int64]
	SimultaneousBindings, ReverseTunnel             field[bool]
	Encapsulations                                  field[[]string]
	ConsoleSocket, LogLevel                         field[string]
	SharedHomeAddresses                             field[[]string]
}

type rawNode struct {
	Index, Line                  int
	Path                         string
	Name, HomeAddress, Pool, NAI field[string]
	SPI, MaxLifetime             field[int64]
	Key, Algorithm, Replay       field[string]
	ReverseTunnel                field[bool]
	MobileNet                    rawNodeMobileNet
	UDPTunnel                    field[bool]
}

type rawFA struct {
	Index, Line    int
	Path           string
	Address        field[string]
	SPI            field[int64]
	Key, Algorithm field[string]
}

type rawGroup struct {
	Line                            int
	Enabled, AckBeforeReply         field[bool]
	RequireReplication              field[bool]
	Address                         field[string]
	Port, KeyID, MaxRetries         field[int64]
	MaxMembers                      field[int64]
	Peers                           field[[]string]
	Key                             field[string]
	AckTimeout, AntiEntropyInterval field[string]
	AcceptKeys                      []rawGroupKey
	Heartbeat, HeartbeatFailover    field[bool]
	HeartbeatInterval               field[string]
	HeartbeatMultiplier             field[int64]
}

type rawGroupKey struct {
	Line int
	Path string
	ID   field[int64]
	Key  field[string]
}

type rawVRRP struct {
	Line                                       int
	Enabled, Preempt, Accept, UseVirtualMAC    field[bool]
	VRID, Priority, GARPCount                  field[int64]
	AdvertInterval, PreemptDelay, GARPInterval field[string]
	Track                                      []rawTrack
	NotifyCommand                              field[string]
	Reclaim                                    rawReclaim
}

// rawReclaim: the re-announcement keys [vrrp] and [hsrp] share.
type rawReclaim struct {
	LowerPrioCount, RefreshCount field[int64]
	LowerPrioInterval, Refresh   field[string]
}

type rawTrack struct {
	Line      int
	Path      string
	Interface field[string]
	Weight    field[int64]
}

type rawHSRP struct {
	Line                            int
	Enabled, Preempt, UseVirtualMAC field[bool]
	Group, Priority                 field[int64]
	Hello, Hold                     field[string]
	Auth                            field[string]
	Reclaim                         rawReclaim
}

type rawDatapath struct {
	Line              int
	Enabled, ProxyARP field[bool]
	ReverseCheck      field[bool]
	TunnelDF          field[bool]
	SendRedirects     field[bool]
	TunnelDevice      field[string]
	ProxyARPMode      field[string]
	RouteProtocol     field[int64]
	ReconcileInterval field[string]
}

type rawAdvert struct {
	Line               int
	Enabled            field[bool]
	Interval, Lifetime field[string]
	Destination        field[string]
}

// readRaw walks the parsed document. Keys are read in the order of the
// reference config so that "known keys" lists read naturally.
func readRaw(d *decoder, doc map[string]any) *rawConfig {
	r := &rawConfig{}
	root := d.root(doc)
	readAgent(root, r)
	readNodes(root, r)
	readGroup(root, r)
	readRoles(root, r)
	readDatapath(root, r)
	readNAT(root, r)
	root.done()
	d.reportUnknown()
	return r
}

// readAgent reads [agent].
func readAgent(root *table, r *rawConfig) {
	t := root.sub("agent")
	r.AgentPresent, r.AgentLine = t.present(), t.line
	r.Agent = rawAgent{
		Interface:            t.str("interface"),
		Address:              t.str("address"),
		VirtualAddress:       t.str("virtual_address"),
		HomeNetwork:          t.str("home_network"),
		ListenPort:           t.integer("listen_port"),
		Capacity:             t.integer("capacity"),
		TombstoneCapacity:    t.integer("tombstone_capacity"),
		TombstoneLifetime:    t.duration("tombstone_lifetime"),
		MaxLifetime:          t.seconds("max_lifetime", DefaultMaxLifetime),
		ReplayTolerance:      t.duration("replay_tolerance"),
		SimultaneousBindings: t.boolean("simultaneous_bindings"),
		ReverseTunnel:        t.boolean("reverse_tunnel"),
		Encapsulations:       t.strings("encapsulations"),
		ConsoleSocket:        t.str("console_socket"),
		LogLevel:             t.str("log_level"),
		AgentID:              t.integer("agent_id"),
		MemoryLimitMiB:       t.integer("memory_limit_mib"),
		SharedHomeAddresses:  t.strings("shared_home_addresses"),
	}
	t.done()
}

// readNodes reads the [[node]] and [[foreign_agent]] entries.
func readNodes(root *table, r *rawConfig) {
	for i, t := range root.tables("node") {
		r.Nodes = append(r.Nodes, rawNode{
			Index:         i + 1,
			Line:          t.line,
			Path:          t.path,
			Name:          t.str("name"),
			HomeAddress:   t.str("home_address"),
			Pool:          t.str("pool"),
			NAI:           t.str("nai"),
			SPI:           t.integer("spi"),
			Key:           t.str("key"),
			Algorithm:     t.str("algorithm"),
			Replay:        t.str("replay"),
			MaxLifetime:   t.seconds("max_lifetime", 600),
			ReverseTunnel: t.boolean("reverse_tunnel"),
			MobileNet:     readNodeMobileNet(t),
			UDPTunnel:     t.boolean("udp_tunnel"),
		})
		t.done()
	}

	for i, t := range root.tables("foreign_agent") {
		r.ForeignAgents = append(r.ForeignAgents, rawFA{
			Index:     i + 1,
			Line:      t.line,
			Path:      t.path,
			Address:   t.str("address"),
			SPI:       t.integer("spi"),
			Key:       t.str("key"),
			Algorithm: t.str("algorithm"),
		})
		t.done()
	}
}

// readGroup reads [group] and its [[group.accept_keys]].
func readGroup(root *table, r *rawConfig) {
	t := root.sub("group")
	r.Group = rawGroup{
		Line:                t.line,
		Enabled:             t.boolean("enabled"),
		Address:             t.str("address"),
		Port:                t.integer("port"),
		Peers:               t.strings("peers"),
		Key:                 t.str("key"),
		KeyID:               t.integer("key_id"),
		AckTimeout:          t.duration("ack_timeout"),
		MaxRetries:          t.integer("max_retries"),
		MaxMembers:          t.integer("max_members"),
		AntiEntropyInterval: t.duration("anti_entropy_interval"),
		AckBeforeReply:      t.boolean("ack_before_reply"),
		RequireReplication:  t.boolean("require_replication"),
		Heartbeat:           t.boolean("heartbeat"),
		HeartbeatInterval:   t.duration("heartbeat_interval"),
		HeartbeatMultiplier: t.integer("heartbeat_multiplier"),
		HeartbeatFailover:   t.boolean("heartbeat_failover"),
	}
	for _, tt := range t.tables("accept_keys") {
		r.Group.AcceptKeys = append(r.Group.AcceptKeys, rawGroupKey{
			Line: tt.line, Path: tt.path, ID: tt.integer("id"), Key: tt.str("key"),
		})
		tt.done()
	}
	t.done()
}

// readRoles reads [vrrp] and [hsrp].
func readRoles(root *table, r *rawConfig) {
	t := root.sub("vrrp")
	r.VRRP = rawVRRP{
		Line:           t.line,
		Enabled:        t.boolean("enabled"),
		VRID:           t.integer("vrid"),
		Priority:       t.integer("priority"),
		AdvertInterval: t.duration("advert_interval"),
		Preempt:        t.boolean("preempt"),
		PreemptDelay:   t.duration("preempt_delay"),
		Accept:         t.boolean("accept"),
		GARPCount:      t.integer("garp_count"),
		GARPInterval:   t.duration("garp_interval"),
		NotifyCommand:  t.str("notify_command"),
		UseVirtualMAC:  t.boolean("use_virtual_mac"),
		Reclaim:        reclaimKeys(t),
	}
	for _, tt := range t.tables("track_interfaces") {
		r.VRRP.Track = append(r.VRRP.Track, rawTrack{
			Line:      tt.line,
			Path:      tt.path,
			Interface: tt.str("interface"),
			Weight:    tt.integer("weight"),
		})
		tt.done()
	}
	t.done()

	t = root.sub("hsrp")
	r.HSRP = rawHSRP{
		Line:          t.line,
		Enabled:       t.boolean("enabled"),
		Group:         t.integer("group"),
		Priority:      t.integer("priority"),
		Hello:         t.duration("hello"),
		Hold:          t.duration("hold"),
		Preempt:       t.boolean("preempt"),
		Auth:          t.str("auth"),
		UseVirtualMAC: t.boolean("use_virtual_mac"),
		Reclaim:       reclaimKeys(t),
	}
	t.done()
}

// readDatapath reads [datapath] and [advertise].
func readDatapath(root *table, r *rawConfig) {
	t := root.sub("datapath")
	r.Datapath = rawDatapath{
		Line:              t.line,
		Enabled:           t.boolean("enabled"),
		TunnelDevice:      t.str("tunnel_device"),
		RouteProtocol:     t.integer("route_protocol"),
		ProxyARP:          t.boolean("proxy_arp"),
		ReverseCheck:      t.boolean("reverse_check"),
		TunnelDF:          t.boolean("tunnel_df"),
		SendRedirects:     t.boolean("send_redirects"),
		ProxyARPMode:      t.str("proxy_arp_mode"),
		ReconcileInterval: t.duration("reconcile_interval"),
	}
	t.done()

	t = root.sub("advertise")
	r.Advert = rawAdvert{
		Line:        t.line,
		Enabled:     t.boolean("enabled"),
		Interval:    t.duration("interval"),
		Lifetime:    t.duration("lifetime"),
		Destination: t.str("destination"),
	}
	t.done()
}
