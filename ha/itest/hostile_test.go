package itest

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/internal/hasync"
	"github.com/hagent/hagent/ha/internal/vrrp"
	"github.com/hagent/hagent/tools/hostile/attack"
	"github.com/hagent/hagent/tools/lab"
)

// One agent with a small table (200) in a lab: a pool for mnsim's real nodes
// (10.77.1.0/24) and one for the hostile flood (10.77.16.0/20, larger than
// the table), VRRP and the group protocol on so that their sockets are under
// fire too.
const hostileConfig = `
[agent]
interface = "eth0"
address = "10.77.0.1"
virtual_address = "10.77.0.254"
home_network = "10.77.0.0/16"
capacity = 200
max_lifetime = 1800
console_socket = "@SOCKET@"
log_level = "info"

[[node]]
name = "real"
pool = "10.77.1.0/24"
spi = 300
key = "text:real-fleet-secret-0123"

[[node]]
name = "flood"
pool = "10.77.16.0/20"
spi = 400
key = "text:flood-pool-secret-0123"

[group]
enabled = true
key = "text:hostile-group-secret-0123456"

[vrrp]
enabled = true
vrid = 51
priority = 200
advert_interval = "100ms"
garp_count = 1

[datapath]
enabled = false
`

const (
	hostileGroupKey = "hostile-group-secret-0123456"
	hostileVRID     = 51
	hostileVIP      = "10.77.0.254"
	hostileRealN    = 50
	hostileCapacity = 200

	// knownUnackedWarnFlood: hasync logs one WARN per unacknowledged binding
	// update (per home address) when a peer stops answering — here the peer
	// that the replayed (captured) group message created — so the log grows
	// with the registration rate. Set false once that WARN is rate-limited:
	// the log bound below then applies to every line.
	knownUnackedWarnFlood = false
)

// TestHostileGeneratorsMatchCodecs checks, without root, that every kind
// tools/hostile sends is the defect it names as the real codecs see it (the
// tool cannot import ha/internal, so it writes the layouts from the specs).
func TestHostileGeneratorsMatchCodecs(t *testing.T) {
	g := attack.NewGen(attack.Config{HomeAgent: netip.MustParseAddr("10.77.0.1"), GroupKey: []byte(hostileGroupKey),
		GroupKeyID: 1, GroupSender: 0x0badc0de, VRID: hostileVRID, VIP: netip.MustParseAddr(hostileVIP)}, 42)
	keys, err := hasync.NewKeyring([]hasync.Key{{ID: 1, Secret: []byte(hostileGroupKey)}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The replayed message is valid: header, ICV and body.
	rm := g.ReplayMessage()
	var h hasync.Header
	var ack hasync.UpdateAck
	if err := h.UnmarshalBinary(rm); err != nil || keys.Open(rm) != nil || h.Type != hasync.TypeUpdateAck || ack.UnmarshalBinary(hasync.Body(rm)) != nil {
		t.Fatalf("replayed message is not a valid Update Ack: header %v, open %v, %x", err, keys.Open(rm), rm)
	}
	for range 3000 {
		b, kind, ttl1 := g.Group(nil)
		herr := h.UnmarshalBinary(b)
		oerr := keys.Open(b)
		switch kind {
		case "wrong-key", "bitflip":
			if herr == nil && oerr == nil {
				t.Fatalf("%s: authenticates: %x", kind, b)
			}
		case "unknown-key-id":
			if herr != nil || oerr != hasync.ErrUnknownKey {
				t.Fatalf("%s: %v %v", kind, herr, oerr)
			}
		case "ttl1":
			if !ttl1 || herr != nil || oerr != nil {
				t.Fatalf("%s: ttl1 %v, %v %v", kind, ttl1, herr, oerr)
			}
		case "replay":
			if string(b) != string(rm) {
				t.Fatalf("replay differs from the replayed message")
			}
		case "truncated", "bad-length", "bad-version":
			if herr == nil {
				t.Fatalf("%s: header parses: %x", kind, b)
			}
		case "auth-malformed":
			if herr != nil || oerr != nil {
				t.Fatalf("%s: must pass header and ICV: %v %v", kind, herr, oerr)
			}
			var rec hasync.Record
			if h.Type == hasync.TypeBindingUpdate && rec.UnmarshalBinary(hasync.Body(b)) == nil {
				t.Fatalf("%s: body parses: %x", kind, b)
			}
			if h.Type == hasync.TypeUpdateAck {
				t.Fatalf("%s: a valid type/size", kind)
			}
		}
		if len(b) > hasync.MaxDatagram {
			t.Fatalf("%s: %d bytes, more than a group datagram", kind, len(b))
		}
	}
	// Every kind, fed to a real group machine, moves exactly one of the
	// counters TestHostileInput sums (groupCounted): session 2's CI caught
	// an "unknown type" that was a valid Leave and moved none, once in
	// tens of thousands of messages, so this runs more than the network
	// test sends, over several seeds; 1055 is one whose stream holds such
	// a Leave under the old generator (its unknown types started at 8).
	for _, seed := range []uint64{1055, 1000, 1001, 1002, 1003, 1004, 1005, 1006} {
		g := attack.NewGen(attack.Config{HomeAgent: netip.MustParseAddr("10.77.0.1"), GroupKey: []byte(hostileGroupKey),
			GroupKeyID: 1, GroupSender: 0x0badc0de, VRID: hostileVRID, VIP: netip.MustParseAddr(hostileVIP)}, seed)
		m, err := hasync.New(hasync.Config{ID: 0x0a4d0001, Addr: netip.MustParseAddr("10.77.0.1"), Session: 1,
			Keys: []hasync.Key{{ID: 1, Secret: []byte(hostileGroupKey)}}, SendKey: 1, MaxPending: 64}, binding.New(64, 64))
		if err != nil {
			t.Fatal(err)
		}
		src := netip.MustParseAddr("10.77.0.66")
		now := int64(time.Hour)
		var out []hasync.Action
		prev := groupCounted(m.Counters())
		for range 25000 {
			b, kind, ttl1 := g.Group(nil)
			ttl := uint8(hasync.RequiredTTL)
			if ttl1 {
				ttl = 1
			}
			now += int64(333 * time.Microsecond)
			out = m.Receive(now, src, ttl, b, out[:0])
			got := groupCounted(m.Counters())
			if got != prev+1 {
				t.Fatalf("seed %d: a %q message moved the counted group counters by %d, want 1: %x\ncounters %+v", seed, kind, got-prev, b, m.Counters())
			}
			prev = got
		}
	}

	src, dst := netip.MustParseAddr("10.77.0.66"), vrrp.Group
	want := &vrrp.Expect{VRID: hostileVRID, Addrs: []netip.Addr{netip.MustParseAddr(hostileVIP)}}
	expect := map[string]error{"bad-checksum": vrrp.ErrChecksum, "ttl": vrrp.ErrTTL, "wrong-vrid": vrrp.ErrVRID,
		"version2": vrrp.ErrVersion, "bad-type": vrrp.ErrType, "truncated": vrrp.ErrTruncated,
		"interval0": vrrp.ErrInterval, "addr-list": vrrp.ErrAddrList}
	for range 3000 {
		b, ttl, kind := g.VRRP(nil, src, dst)
		var a vrrp.Advertisement
		err := vrrp.Receive(&a, b, src, dst, int(ttl), want)
		if w, ok := expect[kind]; ok && err != w || err == nil {
			t.Fatalf("vrrp %s: Receive says %v, want %v: %x ttl %d", kind, err, expect[kind], b, ttl)
		}
	}
}

// groupCountedNames are the `show redundancy` counters of which every group
// datagram the agent reads moves exactly one; groupCounted is the same sum
// over hasync.Counters (the keys are the console's, agent/redundancy.go).
var groupCountedNames = []string{"security.bad_ttl", "security.bad_auth", "security.unknown_key", "security.replayed",
	"security.unproven_session", "security.malformed", "members.peers_rejected", "updates.acks_received", "updates.received",
	"downloads.requests_received", "downloads.replies_received", "downloads.reply_acks_received",
	"anti_entropy.digests_received", "members.leaves_received", "members.heartbeats_received"}

func groupCounted(c hasync.Counters) uint64 {
	return c.BadTTL + c.BadAuth + c.UnknownKey + c.Replay + c.Unproven + c.Malformed + c.PeersRejected +
		c.UpdateAcksReceived + c.UpdatesReceived + c.RequestsReceived + c.TableRepliesReceived +
		c.ReplyAcksReceived + c.DigestsReceived + c.LeavesReceived + c.HeartbeatsReceived
}

// hostileStats is the slice of the agent's counters the test compares.
type hostileStats struct {
	general, drops, replies, table, red map[string]uint64
	role                                string
}

func counters(cs []console.Counter) map[string]uint64 {
	m := map[string]uint64{}
	for _, c := range cs {
		m[c.Name] = c.Value
	}
	return m
}

func snapshot(t *testing.T, a *Agent) hostileStats {
	t.Helper()
	resp, err := console.Call(a.Socket, console.Request{Cmd: "show stats"}, 5*time.Second)
	if err != nil || resp.Stats == nil {
		t.Fatalf("show stats: %v %+v", err, resp)
	}
	r := redundancy(t, a)
	return hostileStats{general: counters(resp.Stats.General), drops: counters(resp.Stats.Drops),
		replies: counters(resp.Stats.Replies), table: counters(resp.Stats.Table), red: counters(r.Flat()), role: r.Role}
}

func sum(m map[string]uint64) (s uint64) {
	for _, v := range m {
		s += v
	}
	return s
}

// vmRSS reads VmRSS (KiB) of pid.
func vmRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// udpRcvbufErrors reads UDP RcvbufErrors from /proc/net/snmp in h's namespace:
// datagrams the kernel dropped because a socket's buffer was full.
func udpRcvbufErrors(t *testing.T, h *lab.Host) uint64 {
	t.Helper()
	out, err := h.Run("cat", "/proc/net/snmp")
	if err != nil {
		t.Fatalf("reading /proc/net/snmp in %s: %v", h.NS, err)
	}
	var names []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.ParseUint(f[i], 10, 64)
				return v
			}
		}
	}
	t.Fatalf("no Udp RcvbufErrors in /proc/net/snmp:\n%s", out)
	return 0
}

func buildHostile(t *testing.T) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+"/", "./tools/hostile")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building tools/hostile: %v\n%s", err, out)
	}
	return filepath.Join(dir, "hostile")
}

type loadReport struct {
	Sent     uint64 `json:"sent"`
	Replies  uint64 `json:"replies"`
	Timeouts uint64 `json:"timeouts"`
	Codes    []struct {
		Code  uint8  `json:"code"`
		Count uint64 `json:"count"`
	} `json:"codes"`
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

func parseLoad(t *testing.T, out string) loadReport {
	t.Helper()
	var r loadReport
	line := strings.TrimSpace(out)
	if i := strings.LastIndex(line, "\n"); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("mnsim load output is not JSON: %v\n%s", err, out)
	}
	return r
}

func (r loadReport) accepted() uint64 {
	var n uint64
	for _, c := range r.Codes {
		if c.Code <= 1 {
			n += c.Count
		}
	}
	return n
}

// TestHostileInput: mnsim's real nodes keep being served while tools/hostile
// throws mutated registrations, group messages, malformed VRRP adverts and a
// registration flood at one agent; then the agent is alive, its memory did
// not grow with the flood, every hostile datagram is in a counter, the full
// table answered 130 without evicting, and its log stayed short.
func TestHostileInput(t *testing.T) {
	l := lab.NewT(t)
	haHost := l.HostT(t, "ha", "10.77.0.1/16")
	mn := l.HostT(t, "mn", "10.77.0.50/16")
	evil := l.HostT(t, "evil", "10.77.0.66/16")
	hostile := buildHostile(t)
	a := StartAgent(t, haHost, hostileConfig)
	eventually(t, 15*time.Second, "agent active (VRRP master)", func() (bool, string) {
		r := redundancy(t, a)
		return strings.HasPrefix(r.Role, "active"), r.Role
	})

	load := func(d time.Duration, rate int) []string {
		return []string{"load", "-ha", "10.77.0.1", "-base", "10.77.1.1", "-n", strconv.Itoa(hostileRealN),
			"-rate", strconv.Itoa(rate), "-duration", d.String(), "-spi", "300", "-key", "real-fleet-secret-0123", "-json"}
	}
	// The real nodes register first: they hold 50 of the 200 slots.
	out, code := Mnsim(t, mn, load(time.Second, 200)...)
	if warm := parseLoad(t, out); code != 0 || warm.accepted() == 0 {
		t.Fatalf("real nodes' first registrations: exit %d\n%s", code, out)
	}
	eventually(t, 5*time.Second, "real nodes bound", func() (bool, string) {
		b := bindings(t, a)
		return b.Live == hostileRealN, fmt.Sprintf("%d live", b.Live)
	})

	pid := a.Proc.Cmd.Process.Pid
	rss0, err := vmRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, a)
	rcv0 := udpRcvbufErrors(t, haHost)
	lines0 := strings.Count(a.Proc.Output(), "\n") + 1

	const dur, rate = 20 * time.Second, 3000
	seed := uint64(time.Now().UnixNano() % 1_000_000)
	if s := os.Getenv("HAGENT_HOSTILE_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("hostile seed %d (HAGENT_HOSTILE_SEED=%d reproduces)", seed, seed)
	corpus := ""
	if root, err := moduleRoot(); err == nil {
		corpus = filepath.Join(root, "ha/mip/testdata/fuzz/FuzzRequest")
	}
	hp, err := evil.Start(hostile, "-target", "10.77.0.1", "-duration", dur.String(), "-rate", strconv.Itoa(rate),
		"-seed", strconv.FormatUint(seed, 10), "-modes", "udp434,group,vrrp,flood",
		"-group-key", "text:"+hostileGroupKey, "-group-key-id", "1", "-vrid", strconv.Itoa(hostileVRID), "-vip", hostileVIP,
		"-pool-base", "10.77.16.1", "-pool-n", "4000", "-pool-spi", "400", "-pool-key", "text:flood-pool-secret-0123",
		"-corpus", corpus, "-json")
	if err != nil {
		t.Fatal(err)
	}
	// Real nodes renew at a modest rate for the same time.
	type loadResult struct {
		out  string
		code int
	}
	lr := make(chan loadResult, 1)
	go func() {
		out, code := Mnsim(t, mn, load(dur, 500)...)
		lr <- loadResult{out, code}
	}()
	var rssMax uint64
	for done := false; !done; {
		select {
		case <-hp.Done():
			done = true
		case <-time.After(250 * time.Millisecond):
		}
		select {
		case <-a.Proc.Done():
			t.Fatalf("hagent exited under hostile input:\n%s", tail(a.Proc.Output(), 60))
		default:
		}
		if r, err := vmRSS(pid); err == nil && r > rssMax {
			rssMax = r
		}
	}
	res := <-lr
	real := parseLoad(t, res.out)
	var hrep attack.Report
	hout := strings.TrimSpace(hp.Output())
	if i := strings.LastIndex(hout, "\n"); i >= 0 {
		hout = hout[i+1:]
	}
	if err := json.Unmarshal([]byte(hout), &hrep); err != nil {
		t.Fatalf("hostile report is not JSON: %v\n%s", err, hp.Output())
	}
	time.Sleep(500 * time.Millisecond) // let the agent drain its sockets
	after := snapshot(t, a)
	rcv := udpRcvbufErrors(t, haHost) - rcv0
	logLines := strings.Count(a.Proc.Output(), "\n") + 1 - lines0
	out = a.Proc.Output()
	if strings.Contains(out, "panic") || strings.Contains(out, "fatal error") {
		t.Fatalf("hagent panicked:\n%s", tail(out, 80))
	}

	d := func(m func(hostileStats) map[string]uint64, k string) uint64 { return m(after)[k] - m(before)[k] }
	gen := func(s hostileStats) map[string]uint64 { return s.general }
	red := func(s hostileStats) map[string]uint64 { return s.red }
	tab := func(s hostileStats) map[string]uint64 { return s.table }
	mode := func(m string) *attack.ModeReport {
		if r := hrep.Modes[m]; r != nil {
			return r
		}
		return &attack.ModeReport{}
	}
	u, f, gr, vr := mode("udp434"), mode("flood"), mode("group"), mode("vrrp")
	t.Logf("hostile sent %d in %s at %d/s: udp434 %d (replies %d %v), flood %d (replies %d %v), group %d, vrrp %d; send errors %d/%d/%d/%d",
		hrep.TotalOut, hrep.Elapsed, rate, u.Sent, u.Replies, u.ReplyCodes, f.Sent, f.Replies, f.ReplyCodes, gr.Sent, vr.Sent,
		u.SendErrors, f.SendErrors, gr.SendErrors, vr.SendErrors)
	t.Logf("real nodes: sent %d, replies %d, accepted %d, timeouts %d, p50 %v, p99 %v, max %v (exit %d)",
		real.Sent, real.Replies, real.accepted(), real.Timeouts, real.P50, real.P99, real.Max, res.code)
	t.Logf("agent RSS: %d KiB before, max %d KiB during (+%d KiB); kernel UDP receive-buffer drops %d; %d log lines",
		rss0, rssMax, int64(rssMax)-int64(rss0), rcv, logLines)

	// 1. Alive and still serving real nodes (renewals through the flood),
	// and still master: no malformed advert moved the election.
	if real.Replies == 0 || real.accepted()*100 < real.Sent*95 {
		t.Errorf("real nodes were not served: %d sent, %d accepted, %d timeouts", real.Sent, real.accepted(), real.Timeouts)
	}
	if r, code := mnsimJSON(t, mn, "renew", "-ha", "10.77.0.1", "-home", "10.77.1.1", "-coa", "198.51.100.7",
		"-spi", "300", "-key", "real-fleet-secret-0123"); code != 0 || r.Code != 0 {
		t.Errorf("a real node's renewal after the attack: exit %d %+v", code, r)
	}
	if n := d(red, "election.role_changes"); n != 0 || !strings.HasPrefix(after.role, "active") {
		t.Errorf("malformed VRRP adverts moved the election: %d role changes, role %s", n, after.role)
	}
	var vdrops uint64
	var vparts []string
	for k := range after.red {
		if strings.HasPrefix(k, "election.dropped_") {
			if n := d(red, k); n > 0 {
				vdrops += n
				vparts = append(vparts, fmt.Sprintf("%s %d", strings.TrimPrefix(k, "election.dropped_"), n))
			}
		}
	}
	sort.Strings(vparts)
	t.Logf("vrrp accounting: hostile sent %d; the runner received %d adverts and dropped %d (%s)",
		vr.Sent, d(red, "election.adverts_received"), vdrops, strings.Join(vparts, ", "))
	// Every malformed advert is counted by reason (the agent is the only
	// VRRP speaker on this link, so every advert it hears is the tool's).
	if got := d(red, "election.adverts_received") + vdrops; got != uint64(vr.Sent) {
		t.Errorf("vrrp: %d adverts sent, %d accounted for (received + dropped per reason)", vr.Sent, got)
	}

	// 2. Memory: the table is preallocated and the receive path allocates
	// nothing per packet, so RSS must not grow with the flood. The bound
	// (8 MiB over the idle agent) covers the Go heap's GC headroom for the
	// console replies and log records the test itself causes.
	if rssMax > rss0+8<<10 {
		t.Errorf("RSS grew from %d KiB to %d KiB under the flood (bound: +8 MiB)", rss0, rssMax)
	}

	// 3. Accounting. Registration port: every datagram received is either
	// answered (per code) or dropped (per reason) …
	req := d(gen, "requests received")
	answered := sum(after.replies) - sum(before.replies)
	dropped := sum(after.drops) - sum(before.drops)
	if req != answered+dropped {
		t.Errorf("registration port: %d received but %d answered + %d dropped: some datagrams have no reason", req, answered, dropped)
	}
	// … and every datagram sent reached a counter unless the kernel dropped
	// it for a full receive buffer (RcvbufErrors, all UDP sockets in the
	// agent's namespace).
	sent434 := u.Sent + f.Sent + real.Sent
	// Group port: every hostile message lands in exactly one of these.
	grpCounted := uint64(0)
	for _, k := range groupCountedNames {
		grpCounted += d(red, k)
	}
	t.Logf("accounting: UDP 434 sent %d (hostile %d + real %d), received %d = %d answered + %d dropped; group sent %d, counted %d (bad ttl %d, bad auth %d, unknown key %d, replayed %d, malformed %d); kernel drops %d",
		sent434, u.Sent+f.Sent, real.Sent, req, answered, dropped, gr.Sent, grpCounted, d(red, "security.bad_ttl"), d(red, "security.bad_auth"),
		d(red, "security.unknown_key"), d(red, "security.replayed"), d(red, "security.malformed"), rcv)
	if req+rcv < sent434 {
		t.Errorf("registration port: %d sent, %d counted, %d dropped by the kernel: %d datagrams unaccounted for", sent434, req, rcv, sent434-req-rcv)
	}
	if grpCounted+rcv < gr.Sent {
		t.Errorf("group port: %d sent, %d counted, %d dropped by the kernel: %d unaccounted for", gr.Sent, grpCounted, rcv, gr.Sent-grpCounted-rcv)
	}
	if req+grpCounted+rcv < sent434+gr.Sent {
		t.Errorf("UDP overall: %d sent, %d counted + %d kernel drops", sent434+gr.Sent, req+grpCounted, rcv)
	}
	if k := gr.Kinds["ttl1"]; k > 0 && d(red, "security.bad_ttl")+rcv < k {
		t.Errorf("group: %d TTL-1 messages sent, %d counted as bad ttl", k, d(red, "security.bad_ttl"))
	}
	// The replayed message's session is never proven (the hostile tool
	// answers no challenge): every copy, the first included, is refused.
	if k := gr.Kinds["replay"]; k > 0 && d(red, "security.replayed")+d(red, "security.unproven_session")+rcv < k {
		t.Errorf("group: %d copies of one valid message, %d counted as replayed or unproven (want all)", k, d(red, "security.replayed")+d(red, "security.unproven_session"))
	}

	// 4. Full table: 130, nothing evicted. Every binding ever made is still
	// there (lifetimes ≥ 600 s, no de-registrations), the real nodes too.
	if d(tab, "full (answered 130)") == 0 || after.replies["130 insufficient resources"] == before.replies["130 insufficient resources"] || f.ReplyCodes["130"] == 0 {
		t.Errorf("the flood never met a full table: full %d, 130 replies %d, flood saw %v",
			d(tab, "full (answered 130)"), after.replies["130 insufficient resources"], f.ReplyCodes)
	}
	b := bindings(t, a)
	if b.Live != hostileCapacity {
		t.Errorf("live bindings %d, want the capacity %d", b.Live, hostileCapacity)
	}
	if regs := after.general["registrations"]; regs != uint64(b.Live) || after.general["expired"]+after.general["deregistrations"]+after.general["cleared by operator"] != 0 {
		t.Errorf("%d bindings made, %d live (expired %d, deregistered %d, cleared %d): something was evicted",
			regs, b.Live, after.general["expired"], after.general["deregistrations"], after.general["cleared by operator"])
	}
	for i := 1; i <= hostileRealN; i++ {
		h := fmt.Sprintf("10.77.1.%d", i)
		if row := findRow(b, h); row == nil || row.State != "live" {
			t.Errorf("real node %s lost its binding: %+v", h, row)
		}
	}

	// 5. Logs: hostile input is counted, not logged line by line.
	attackLog := tail(out, logLines)
	unacked := strings.Count(attackLog, "binding update not acknowledged")
	bound := 100
	if knownUnackedWarnFlood {
		bound += unacked
		if unacked > 0 {
			t.Logf("KNOWN ISSUE (not rate-limited): %d lines \"hasync: binding update not acknowledged\", one per binding update to the peer the replayed group message created", unacked)
		}
	}
	if logLines > bound {
		t.Errorf("%d log lines while under attack (bound %d):\n%s", logLines, bound, tail(out, 40))
	}
	if testing.Verbose() {
		t.Logf("agent log during the attack:\n%s", tail(out, logLines))
	}
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
