package config

import (
	"bytes"
	"reflect"
	"slices"
)

// RestartNeeded names the settings that differ between old and new and
// cannot change while the agent runs: they shape sockets, devices, the
// preallocated binding table or the group. nil when a reload may apply new.
// The names are in a fixed order, the agent's own settings first.
func RestartNeeded(old, new *Config) []string {
	o, n := &old.Agent, &new.Agent
	var what []string
	for _, c := range [...]struct {
		changed bool
		name    string
	}{
		{o.Interface != n.Interface, "agent.interface"},
		{o.Address != n.Address, "agent.address"},
		{o.VirtualAddress != n.VirtualAddress, "agent.virtual_address"},
		{o.HomeNetwork != n.HomeNetwork, "agent.home_network"},
		{o.ListenPort != n.ListenPort, "agent.listen_port"},
		{o.Capacity != n.Capacity, "agent.capacity"},
		{o.TombstoneCapacity != n.TombstoneCapacity, "agent.tombstone_capacity"},
		{o.ConsoleSocket != n.ConsoleSocket, "agent.console_socket"},
		{o.AgentID != n.AgentID, "agent.agent_id"},
		// The GRE device is created at start only: a reload adding "gre"
		// would be accepted while G-bit requests kept getting 139. The
		// order of the list does not matter.
		{!sameSet(o.Encapsulations, n.Encapsulations), "agent.encapsulations"},
		// Whether an address is shared decides how its bindings are keyed.
		{!slices.Equal(o.SharedHomeAddresses, n.SharedHomeAddresses), "agent.shared_home_addresses"},
		{!reflect.DeepEqual(withoutReloadable(old.Group), withoutReloadable(new.Group)), "[group] (other than its keys and require_replication)"},
		{!reflect.DeepEqual(old.VRRP, new.VRRP), "[vrrp]"},
		{!reflect.DeepEqual(old.HSRP, new.HSRP), "[hsrp]"},
		{!reflect.DeepEqual(old.Datapath, new.Datapath), "[datapath]"},
		{!reflect.DeepEqual(old.Advert, new.Advert), "[advertise]"},
		// The UDP tunnel's data path and the advertisements' U flag are
		// set up at start; the rest of [nat] is read at each registration.
		{old.NAT.UDPTunnel != new.NAT.UDPTunnel, "nat.udp_tunnel"},
		{old.NAT.Uplink != new.NAT.Uplink, "nat.uplink_interface"},
	} {
		if c.changed {
			what = append(what, c.name)
		}
	}
	return what
}

// GroupKeysChanged reports whether the group's keys differ: group.key,
// group.key_id or the accept_keys, in their order.
func GroupKeysChanged(old, new *Group) bool {
	if old.KeyID != new.KeyID || !sameBytes(old.Key, new.Key) || len(old.AcceptKeys) != len(new.AcceptKeys) {
		return true
	}
	for i := range old.AcceptKeys {
		a, b := &old.AcceptKeys[i], &new.AcceptKeys[i]
		if a.ID != b.ID || !sameBytes(a.Key, b.Key) {
			return true
		}
	}
	return false
}

// sameBytes is reflect.DeepEqual for byte slices: an empty key and no key
// differ.
func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// withoutReloadable is g minus what a reload may change in it: the group
// keys, and require_replication (the owner loop reads it from the current
// config at each decision, so switching it needs no new state; the config
// check makes sure ack_before_reply, which does, is on when it is).
func withoutReloadable(g Group) Group {
	g.Key, g.KeyID, g.AcceptKeys = nil, 0, nil
	g.RequireReplication = false
	return g
}
