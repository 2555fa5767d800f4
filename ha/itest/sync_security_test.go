package itest

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/internal/groupio"
	"github.com/hagent/hagent/ha/internal/hasync"
	"github.com/hagent/hagent/tools/lab"
)

// agentID is the default agent id of an address (its 32-bit value).
func agentID(a string) uint32 {
	b := netip.MustParseAddr(a).As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// forge builds a Binding Update sealed with keyring k.
func forge(t *testing.T, k *hasync.Keyring, sender, session, seq uint32, rec hasync.Record) []byte {
	t.Helper()
	h := hasync.Header{Version: hasync.Version, Type: hasync.TypeBindingUpdate, Sender: sender, Session: session, Seq: seq}
	b, _ := h.AppendBinary(nil)
	b, _ = rec.AppendBinary(b)
	b, err := k.Seal(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keyring(t *testing.T, id uint8, secret string) *hasync.Keyring {
	t.Helper()
	k, err := hasync.NewKeyring([]hasync.Key{{ID: id, Secret: []byte(secret)}}, id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rogueSender is a UDP socket in a lab host, created there with
// groupio.InNetNS, sending with a chosen IP TTL.
func rogueSender(t *testing.T, h *lab.Host, local string, ttl int) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := groupio.InNetNS("/var/run/netns/"+h.NS, func() error {
		var err error
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(local), 0)))
		return err
	})
	if err != nil {
		t.Fatalf("rogue socket in %s: %v", h.NS, err)
	}
	t.Cleanup(func() { c.Close() })
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = setTTL(int(fd), ttl) }); err != nil || serr != nil {
		t.Fatalf("setting IP_TTL %d: %v %v", ttl, err, serr)
	}
	return c
}

// TestSyncForgedAndReplayedChangeNothing: group messages sent by a host on
// the LAN with a wrong key, an unknown key id, a TTL below 255, or a
// captured valid message replayed change no table and no peer, and are
// counted per reason on the console (issue 3).
func TestSyncForgedAndReplayedChangeNothing(t *testing.T) {
	l := lab.NewT(t)
	mn := l.HostT(t, "mn", "10.0.0.50"+syncMaskLen)
	// Group-only mode (no election): both members serve once initialized.
	var agents []*Agent
	for i := 1; i <= 2; i++ {
		agents = append(agents, StartAgent(t, syncHost(t, l, i), syncConfig(i, false, 100, `anti_entropy_interval = "30s"`)))
	}
	rogue := l.HostT(t, "rogue", "10.0.0.66"+syncMaskLen)
	for i, a := range agents {
		waitUntil(t, 15*time.Second, fmt.Sprintf("member %d initialized with one peer", i+1), func() (bool, string) {
			r := redundancy(t, a)
			return r.Synced && len(r.Peers) == 1 && r.Peers[0].State == "up", fmt.Sprintf("%+v", r)
		})
	}

	// Capture the group's traffic in the rogue host: a member joined to
	// the multicast group like any other, but without the key.
	var capConn *groupio.Conn
	if err := groupio.InNetNS("/var/run/netns/"+rogue.NS, func() error {
		var err error
		capConn, err = groupio.Open(groupio.Options{Interface: "eth0", Local: netip.MustParseAddr("10.0.0.66"),
			Group: netip.MustParseAddr(syncGroup), Port: syncPort})
		return err
	}); err != nil {
		t.Fatalf("capture socket in the rogue host: %v", err)
	}
	captured := make(chan []byte, 64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, _, _, err := capConn.Read(buf)
			if err != nil {
				return
			}
			select {
			case captured <- append([]byte(nil), buf[:n]...):
			default:
			}
		}
	}()
	t.Cleanup(func() { capConn.Close(); wg.Wait() })

	id1 := agentID(syncAddr(1))
	r, code := mnsimJSON(t, mn, "register", "-ha", syncAddr(1), "-home", "10.2.0.5", "-coa", "198.51.100.7",
		"-spi", "300", "-key", syncKey, "-lifetime", "600", "-retries", "2")
	if code != 0 || r.Code != 0 {
		t.Fatalf("register: exit %d %+v", code, r)
	}
	var update []byte
	var rec hasync.Record
	deadline := time.After(10 * time.Second)
	for update == nil {
		select {
		case p := <-captured:
			var h hasync.Header
			if h.UnmarshalBinary(p) == nil && h.Type == hasync.TypeBindingUpdate && h.Sender == id1 &&
				rec.UnmarshalBinary(hasync.Body(p)) == nil && rec.Home == agentID("10.2.0.5") {
				update = p
			}
		case <-deadline:
			t.Fatal("no Binding Update from member 1 captured within 10s")
		}
	}
	waitUntil(t, 10*time.Second, "member 2 holds the registration", func() (bool, string) {
		b := bindings(t, agents[1])
		return b.Live == 1, fmt.Sprintf("%d live", b.Live)
	})
	// Anti-entropy runs every 30 s here: no digest restores what a
	// forgery might change before the checks below look.
	type snap struct {
		table string
		peers []console.Peer
		c     map[string]uint64
	}
	take := func(a *Agent) snap {
		r := redundancy(t, a)
		c := map[string]uint64{}
		for _, kv := range r.Flat() {
			c[kv.Name] = kv.Value
		}
		return snap{table: tableKey(allBindings(t, a)), peers: r.Peers, c: c}
	}
	before := []snap{take(agents[0]), take(agents[1])}

	// Each forgery would de-register 10.2.0.5 (a newer Identification) or
	// add 10.2.0.6 if it were accepted.
	kill := hasync.Record{Flags: hasync.RecDereg, Remaining: 60000, Home: rec.Home, ID: rec.ID + 1<<32, Origin: id1}
	add := hasync.Record{Granted: 600, Remaining: 600000, Home: agentID("10.2.0.6"), HomeAgent: id1, CareOf: agentID("198.51.100.66"), ID: rec.ID + 1<<32, Origin: id1}
	rogueID := agentID("10.0.0.66")
	good := keyring(t, 1, syncGroupK)
	wrongKey := forge(t, keyring(t, 1, "not-the-group-key-0123456"), id1, 0xfeed, 1, kill)
	unknownKey := forge(t, keyring(t, 99, syncGroupK), id1, 0xfeed, 2, add)
	lowTTL := forge(t, good, rogueID, 0xfeed, 3, kill) // right key, sent from off-link (TTL 64)

	send := func(c *net.UDPConn, to string, p []byte) {
		t.Helper()
		if _, err := c.WriteToUDPAddrPort(p, netip.AddrPortFrom(netip.MustParseAddr(to), syncPort)); err != nil {
			t.Fatalf("sending to %s: %v", to, err)
		}
	}
	onLink := rogueSender(t, rogue, "10.0.0.66", 255)
	offLink := rogueSender(t, rogue, "10.0.0.66", 64)
	for _, to := range []string{syncAddr(1), syncAddr(2)} {
		send(onLink, to, wrongKey)
		send(onLink, to, unknownKey)
		send(offLink, to, lowTTL)
	}
	// The captured update, replayed verbatim to member 2 (member 1 sent
	// it: it ignores its own messages before any replay check).
	send(onLink, syncAddr(2), update)

	delta := func(s snap, a *Agent) map[string]uint64 {
		r := redundancy(t, a)
		d := map[string]uint64{}
		for _, kv := range r.Flat() {
			if v := kv.Value - s.c[kv.Name]; v != 0 {
				d[kv.Name] = v
			}
		}
		return d
	}
	wants := []map[string]uint64{
		{"security.violations": 3, "security.bad_auth": 1, "security.unknown_key": 1, "security.bad_ttl": 1},
		{"security.violations": 4, "security.bad_auth": 1, "security.unknown_key": 1, "security.bad_ttl": 1, "security.replayed": 1},
	}
	for i, a := range agents {
		waitUntil(t, 10*time.Second, fmt.Sprintf("member %d counts every forgery", i+1), func() (bool, string) {
			d := delta(before[i], a)
			for k, v := range wants[i] {
				if d[k] != v {
					return false, fmt.Sprintf("counter deltas %v", d)
				}
			}
			return true, ""
		})
	}
	// Let any wrong effect (a tombstone, a peer moved) show, then compare.
	time.Sleep(1500 * time.Millisecond)
	for i, a := range agents {
		after := take(a)
		if after.table != before[i].table {
			t.Errorf("member %d: table changed by forged/replayed messages:\nbefore\n%s\nafter\n%s", i+1, before[i].table, after.table)
		}
		if len(after.peers) != 1 || after.peers[0].Address != before[i].peers[0].Address || after.peers[0].ID != before[i].peers[0].ID {
			t.Errorf("member %d: Home Agent list changed by forged/replayed messages: %+v → %+v", i+1, before[i].peers, after.peers)
		}
	}
	// The group still works: a renewal on member 1 reaches member 2 (its
	// ack must find member 1 at its real address).
	time.Sleep(10 * time.Millisecond)
	r, code = mnsimJSON(t, mn, "renew", "-ha", syncAddr(1), "-home", "10.2.0.5", "-coa", "198.51.100.9",
		"-spi", "300", "-key", syncKey, "-lifetime", "600")
	if code != 0 || r.Code != 0 {
		t.Fatalf("renew: exit %d %+v", code, r)
	}
	waitUntil(t, 10*time.Second, "member 2 holds the renewal, member 1 got its ack", func() (bool, string) {
		row := findRow(bindings(t, agents[1]), "10.2.0.5")
		d := delta(before[0], agents[0])
		return row != nil && row.CareOf == "198.51.100.9" && d["updates.acks_received"] >= 1 && d["updates.sent_total"] == 1,
			fmt.Sprintf("%+v, member 1 deltas %v", row, d)
	})
}
