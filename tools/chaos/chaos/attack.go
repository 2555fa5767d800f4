package chaos

// Attacks on the group protocol (run with Options.Attacks): a host on the
// home LAN, "rogue", that
//
//   - captures every group datagram multicast from the start of the run, and
//     in an OldSessionReplay fault restarts the members (which forget every
//     peer's session) and replays what it captured — the earlier sessions
//     of every member restarted so far included — to every member, at once
//     and then in batches, then kills the active member (planAttack);
//   - holds the group key in a FakePeers fault and poses as many members
//     (invented agent ids) that are heard, answer session challenges, and
//     never acknowledge anything.
//
// Neither may change what the invariant checker sees: every acceptance
// kept, nothing resurrected, the tables equal after the heal. The group
// messages are built here from the protocol's specification
// (docs/hasync-spec.md §3, §4.8, §4.10–4.11), sharing no code with the agents.

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// OldSessionReplay: restart the target, then replay captured group
	// datagrams of every earlier session to every member.
	OldSessionReplay Kind = Reorder + 1 + iota
	// FakePeers: a key holder poses as fakePeerIDs members that never
	// acknowledge.
	FakePeers
)

const (
	rogueAddr    = "10.1.0.66"
	groupAddr    = "224.0.0.240" // group.address default
	groupSecret  = "chaos-group-secret-0123456789"
	groupKeyID   = 1 // group.key_id default
	protoVersion = 2
	typeDigest   = 7
	typeChal     = 9
	typeResp     = 10
	fakePeerIDs  = 40
	maxCaptured  = 4000
)

func attackName(k Kind) string {
	switch k {
	case OldSessionReplay:
		return "restart+old-session replay"
	case FakePeers:
		return "fake peers with the key"
	}
	return fmt.Sprintf("kind %d", int(k))
}

// attacker is the rogue host's state. Its goroutines stop with close.
type attacker struct {
	rx, tx *net.UDPConn
	rng    *rand.Rand
	mu     sync.Mutex
	pkts   [][]byte // captured datagrams (a uniform sample once full)
	seen   int
	fakes  []fakeMember
	fakeOn bool
	sent   int
	capWG  sync.WaitGroup // the capture goroutine
	stop   chan struct{}  // the running attack's loop
	loops  sync.WaitGroup
}

type fakeMember struct {
	id, session, seq uint32
}

// startAttacker adds the rogue host and starts capturing.
func (r *run) startAttacker() (*attacker, error) {
	h, err := r.l.Host("rogue", rogueAddr+"/16")
	if err != nil {
		return nil, err
	}
	a := &attacker{rng: rand.New(rand.NewPCG(r.o.Seed, 0x726f677565))}
	err = inNetNS("/var/run/netns/"+h.NS, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		if a.rx, err = net.ListenMulticastUDP("udp4", ifi, &net.UDPAddr{IP: net.ParseIP(groupAddr), Port: groupPort}); err != nil {
			return err
		}
		a.tx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(rogueAddr)})
		if err != nil {
			return err
		}
		rc, err := a.tx.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, 255) }); err != nil {
			return err
		}
		return serr
	})
	if err != nil {
		a.close()
		return nil, fmt.Errorf("chaos: rogue host sockets: %w", err)
	}
	for i := range fakePeerIDs {
		a.fakes = append(a.fakes, fakeMember{id: 0x0a01f000 + uint32(i), session: a.rng.Uint32() | 1})
	}
	a.capWG.Add(1)
	go a.capture()
	return a, nil
}

func (a *attacker) close() {
	a.endLoop()
	if a.rx != nil {
		a.rx.Close()
	}
	if a.tx != nil {
		a.tx.Close()
	}
	a.capWG.Wait()
}

// startLoop runs fn every period until endLoop.
func (a *attacker) startLoop(fn func(), period time.Duration) {
	a.endLoop()
	a.stop = make(chan struct{})
	stop := a.stop
	a.loops.Add(1)
	go func() {
		defer a.loops.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fn()
			}
		}
	}()
}

func (a *attacker) endLoop() {
	if a.stop != nil {
		close(a.stop)
		a.stop = nil
	}
	a.loops.Wait()
}

// capture keeps a sample of the group's multicast traffic and answers the
// session challenges addressed to a fake member while FakePeers is on.
func (a *attacker) capture() {
	defer a.capWG.Done()
	buf := make([]byte, 2048)
	for {
		n, _, err := a.rx.ReadFromUDP(buf)
		if err != nil {
			return
		}
		p := buf[:n]
		if n < 36 || p[0] != protoVersion {
			continue
		}
		a.mu.Lock()
		a.seen++
		if len(a.pkts) < maxCaptured {
			a.pkts = append(a.pkts, append([]byte(nil), p...))
		} else if i := a.rng.IntN(a.seen); i < maxCaptured {
			a.pkts[i] = append(a.pkts[i][:0], p...)
		}
		if p[1] == typeChal && n == 20+12+16 && a.fakeOn {
			target := binary.BigEndian.Uint32(p[20:])
			for i := range a.fakes {
				if a.fakes[i].id == target {
					challenger := binary.BigEndian.Uint32(p[8:])
					body := binary.BigEndian.AppendUint32(nil, challenger)
					body = append(body, p[24:32]...)
					a.toMembers(a.seal(&a.fakes[i], typeResp, body))
				}
			}
		}
		a.mu.Unlock()
	}
}

// seal builds one group message of fake member f (spec §3).
func (a *attacker) seal(f *fakeMember, typ uint8, body []byte) []byte {
	f.seq++
	n := 20 + len(body) + 16
	b := []byte{protoVersion, typ, byte(n >> 8), byte(n), groupKeyID, 0, 0, 0}
	b = binary.BigEndian.AppendUint32(b, f.id)
	b = binary.BigEndian.AppendUint32(b, f.session)
	b = binary.BigEndian.AppendUint32(b, f.seq)
	b = append(b, body...)
	m := hmac.New(sha256.New, []byte(groupSecret))
	m.Write(b)
	return m.Sum(b)[:n]
}

// toMembers sends p to every member's address (unicast, TTL 255); a.mu held.
func (a *attacker) toMembers(p []byte) {
	for i := 1; i <= 3; i++ {
		to := netip.AddrPortFrom(netip.MustParseAddr(fmt.Sprintf("10.1.0.1%d", i)), groupPort)
		if _, err := a.tx.WriteToUDPAddrPort(p, to); err == nil {
			a.sent++
		}
	}
}

// replay sends up to n captured datagrams (all of them with n < 0).
func (a *attacker) replay(n int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := 0
	for _, i := range a.rng.Perm(len(a.pkts)) {
		if n >= 0 && k >= n {
			break
		}
		a.toMembers(a.pkts[i])
		k++
	}
	return k
}

// hello makes every fake member heard: an empty, not-initialized digest.
func (a *attacker) hello() {
	body := make([]byte, 12+8*128)
	body[1] = 7
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range a.fakes {
		a.toMembers(a.seal(&a.fakes[i], typeDigest, body))
	}
}

// attackStream is the attacks' own generator: a seed's other faults do not
// depend on whether attacks are on.
func attackStream(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x61747461636b)) }

// planAttack adds at most one attack to a round, from the attacks' own
// stream (so the other faults of a seed stay as they were).
//
// OldSessionReplay is the reproduction, made to bite in a group of
// three: it starts once the round's other faults are over, restarts every
// member one after the other (ha1, the preferred master, first: its
// earlier session is then among the captured datagrams; never two down at
// once), replays everything captured to every member while the traffic
// goes on, and at its end kills ha1 (and restarts it). A member that let
// a replay displace ha1's live session drops ha1's updates; ha1, with no
// acknowledging peer, serves alone, and the kill loses what it accepted:
// the checker sees it. Its target in the schedule is ha1.
func planAttack(g *rand.Rand, rd Round) []Fault {
	if g.IntN(3) == 0 {
		return nil
	}
	k := OldSessionReplay + Kind(g.IntN(2))
	at := time.Duration(g.Int64N(int64(rd.Window / 2)))
	f := Fault{Kind: k, Target: 3, At: at, For: time.Second + time.Duration(g.Int64N(int64(rd.Window-at)))}
	if k == OldSessionReplay {
		end := time.Duration(0)
		for _, o := range rd.Faults {
			end = max(end, o.At+o.For)
		}
		f.Target, f.At, f.For = 0, end+time.Second, 4*time.Second
	}
	return []Fault{f}
}

func (r *run) applyAttack(f Fault) error {
	a := r.att
	switch f.Kind {
	case OldSessionReplay:
		for _, m := range r.ms {
			if err := r.restartSynced(m); err != nil {
				return err
			}
		}
		n := a.replay(-1)
		r.note("    restarted ha1, ha2, ha3 in turn; replayed %d captured group datagrams to every member", n)
		a.startLoop(func() { a.replay(50) }, 500*time.Millisecond)
	case FakePeers:
		a.mu.Lock()
		a.fakeOn = true
		a.mu.Unlock()
		a.hello()
		a.startLoop(a.hello, time.Second)
	}
	return nil
}

// restartSynced kills m, starts it again and waits until its table is
// initialized from the group.
func (r *run) restartSynced(m *member) error {
	at := time.Now()
	if err := m.proc.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("chaos: SIGKILL ha%d: %w", m.i+1, err)
	}
	<-m.proc.Done()
	m.dead = true
	r.killed(m, at)
	if err := r.startAgent(m); err != nil {
		return err
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := consoleCall(m.socket, consoleRequest{Cmd: "show redundancy"}, time.Second); err == nil && resp.Redundancy != nil && resp.Redundancy.Synced {
			return nil
		}
	}
	return fmt.Errorf("chaos: ha%d restarted by an attack: table not initialized within 30s", m.i+1)
}

func (r *run) clearAttack(f Fault, round int) error {
	a := r.att
	a.endLoop()
	if f.Kind == OldSessionReplay {
		// What ha1 accepted meanwhile now lives only on the others.
		m := r.ms[0]
		at := time.Now()
		if err := m.proc.Signal(syscall.SIGKILL); err != nil {
			return fmt.Errorf("chaos: SIGKILL ha1: %w", err)
		}
		<-m.proc.Done()
		m.dead = true
		r.killed(m, at)
		r.note("    killed ha1 (restarted at the heal)")
	}
	a.mu.Lock()
	a.fakeOn = false
	sent := a.sent
	a.mu.Unlock()
	line, peers := r.groupCounters()
	r.note("    attacker sent %d datagrams so far; members: %s", sent, line)
	if f.Kind == FakePeers {
		// group.max_members (16 by default): 15 others at most, whatever
		// the key holder invents.
		var problems []string
		for i, n := range peers {
			if n > 15 {
				problems = append(problems, fmt.Sprintf("ha%d holds %d peers in its Home Agent list, more than group.max_members (16) allows", i+1, n))
			}
		}
		if problems != nil {
			return &Violation{Seed: r.o.Seed, Round: round, Schedule: r.sched, Problems: problems}
		}
	}
	return nil
}

// groupCounters reads, from each member's console, what the attacks cost
// it: proof that they took effect, and that they were bounded.
func (r *run) groupCounters() (string, []int) {
	var peers []int
	names := []string{"members.sessions_proven", "security.unproven_session", "security.replayed", "members.peers_rejected", "updates.not_tracked_unacking_peer"}
	var parts []string
	for _, m := range r.ms {
		vals := map[string]uint64{}
		c, err := net.DialTimeout("unix", m.socket, time.Second)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			var resp struct {
				Redundancy *struct {
					Peers    []json.RawMessage `json:"peers"`
					Counters []struct {
						Key      string `json:"key"`
						Counters []struct {
							Key   string `json:"key"`
							Value uint64 `json:"value"`
						} `json:"counters"`
					} `json:"counter_groups"`
				} `json:"redundancy"`
			}
			if _, err = c.Write([]byte(`{"cmd":"show redundancy"}` + "\n")); err == nil {
				var line []byte
				if line, err = bufio.NewReaderSize(c, 1<<20).ReadBytes('\n'); err == nil {
					err = json.Unmarshal(line, &resp)
				}
			}
			c.Close()
			if err == nil && resp.Redundancy != nil {
				for _, g := range resp.Redundancy.Counters { // grouped: the dotted key names it
					for _, kv := range g.Counters {
						vals[g.Key+"."+kv.Key] = kv.Value
					}
				}
				vals["peers"] = uint64(len(resp.Redundancy.Peers))
			}
		}
		peers = append(peers, int(vals["peers"]))
		parts = append(parts, fmt.Sprintf("ha%d peers %d, proven %d, unproven %d, replayed %d, rejected %d, refused %d", m.i+1,
			vals["peers"], vals[names[0]], vals[names[1]], vals[names[2]], vals[names[3]], vals[names[4]]))
	}
	return strings.Join(parts, "; "), peers
}
