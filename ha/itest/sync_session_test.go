package itest

import (
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/groupio"
	"github.com/hagent/hagent/ha/internal/hasync"
	"github.com/hagent/hagent/tools/lab"
)

// captureGroup joins the group from host h (without the key) and keeps
// every datagram sent by agent id from, until stop is called.
func captureGroup(t *testing.T, h *lab.Host, local string, from uint32) (stop func() [][]byte) {
	t.Helper()
	var c *groupio.Conn
	if err := groupio.InNetNS("/var/run/netns/"+h.NS, func() error {
		var err error
		c, err = groupio.Open(groupio.Options{Interface: "eth0", Local: netip.MustParseAddr(local),
			Group: netip.MustParseAddr(syncGroup), Port: syncPort})
		return err
	}); err != nil {
		t.Fatalf("capture socket in %s: %v", h.NS, err)
	}
	var (
		mu   sync.Mutex
		pkts [][]byte
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, _, _, err := c.Read(buf)
			if err != nil {
				return
			}
			var hd hasync.Header
			if hd.UnmarshalBinary(buf[:n]) == nil && hd.Sender == from {
				mu.Lock()
				if len(pkts) < 4096 {
					pkts = append(pkts, append([]byte(nil), buf[:n]...))
				}
				mu.Unlock()
			}
		}
	}()
	var once sync.Once
	stop = func() [][]byte {
		once.Do(func() { c.Close(); wg.Wait() })
		mu.Lock()
		defer mu.Unlock()
		return pkts
	}
	t.Cleanup(func() { stop() })
	return stop
}

// restart kills member a with SIGKILL and starts it again with the same
// config (a new session, an empty table), waiting until it is initialized.
func restart(t *testing.T, a *Agent, i int, config string) *Agent {
	t.Helper()
	if err := a.Proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.Proc.Done()
	n := StartAgent(t, a.Host, config)
	if err := n.Proc.WaitFor("binding table initialized", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSyncOldSessionReplay: two members; A restarts, then B restarts (it
// forgets everything about A); a host on the LAN, without the key,
// replays to B (and to A) every datagram A sent in its earlier session.
// B must keep accepting and acknowledging A's genuine messages, keep A's
// real address, and hold every registration A accepted: after kill -9 of
// A nothing is lost. Before the session proof, B retired A's live session
// on the first replayed datagram and dropped all of A's messages as
// replays; A served alone (accepted_unreplicated) and its registrations
// died with it.
func TestSyncOldSessionReplay(t *testing.T) {
	l := lab.NewT(t)
	mn := l.HostT(t, "mn", "10.0.0.50"+syncMaskLen)
	// Anti-entropy every 30 s: no digest repairs what the replay breaks
	// within the test.
	cfg := func(i int) string { return syncConfig(i, false, 1000, `anti_entropy_interval = "30s"`) }
	a := StartAgent(t, syncHost(t, l, 1), cfg(1))
	b := StartAgent(t, syncHost(t, l, 2), cfg(2))
	for i, x := range []*Agent{a, b} {
		waitUntil(t, 15*time.Second, fmt.Sprintf("member %d initialized with one peer", i+1), func() (bool, string) {
			r := redundancy(t, x)
			return r.Synced && len(r.Peers) == 1 && r.Peers[0].State == "up", fmt.Sprintf("%+v", r)
		})
	}
	rogue := l.HostT(t, "rogue", "10.0.0.66"+syncMaskLen)
	stop := captureGroup(t, rogue, "10.0.0.66", agentID(syncAddr(1)))

	// A's first session: registrations (Binding Updates), digests, acks.
	syncLoad(t, mn, syncAddr(1), 20, 200, time.Second)
	waitUntil(t, 10*time.Second, "member 2 holds member 1's first registrations", func() (bool, string) {
		n := bindings(t, b).Live
		return n == 20, fmt.Sprintf("%d live", n)
	})
	a = restart(t, a, 1, cfg(1))
	b = restart(t, b, 2, cfg(2))
	old := stop()
	if len(old) == 0 {
		t.Fatal("nothing of member 1's first session captured")
	}
	waitUntil(t, 15*time.Second, "both restarted members see each other up", func() (bool, string) {
		ra, rb := redundancy(t, a), redundancy(t, b)
		return len(ra.Peers) == 1 && ra.Peers[0].State == "up" && len(rb.Peers) == 1 && rb.Peers[0].State == "up",
			fmt.Sprintf("%+v / %+v", ra.Peers, rb.Peers)
	})
	// Let member 1 count member 2 as acknowledging, as in operation.
	syncLoad(t, mn, syncAddr(1), 5, 100, 500*time.Millisecond, "-base", "10.2.1.1")

	onLink := rogueSender(t, rogue, "10.0.0.66", 255)
	for _, p := range old {
		for _, to := range []string{syncAddr(2), syncAddr(1)} {
			if _, err := onLink.WriteToUDPAddrPort(p, netip.AddrPortFrom(netip.MustParseAddr(to), syncPort)); err != nil {
				t.Fatalf("replaying to %s: %v", to, err)
			}
		}
	}
	time.Sleep(500 * time.Millisecond)
	unrepl := "replies.accepted_unreplicated"
	before := counter(t, redundancy(t, a), unrepl)
	replayedB := counter(t, redundancy(t, b), "security.replayed")

	// A's live session: 200 registrations, each acknowledged by B.
	syncLoad(t, mn, syncAddr(1), 200, 400, time.Second, "-base", "10.2.2.1")
	ra, rb := redundancy(t, a), redundancy(t, b)
	if got := counter(t, ra, unrepl) - before; got != 0 {
		t.Errorf("member 1 served %d registrations alone after the replay: member 2 stopped acknowledging", got)
	}
	if got := counter(t, rb, "security.replayed") - replayedB; got != 0 {
		t.Errorf("member 2 dropped %d genuine messages of member 1 as replays", got)
	}
	if len(rb.Peers) != 1 || rb.Peers[0].Address != syncAddr(1) || rb.Peers[0].State != "up" {
		t.Errorf("member 2's view of member 1 after the replay: %+v", rb.Peers)
	}
	want := tableKey(allBindings(t, a))
	if err := a.Proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.Proc.Done()
	if got := tableKey(allBindings(t, b)); got != want {
		t.Fatalf("after kill -9 of member 1, member 2 holds another table:\nmember 1 had\n%s\nmember 2 holds\n%s", firstLines(want, 10), firstLines(got, 10))
	}
	if n := bindings(t, b).Live; n != 225 {
		t.Errorf("member 2 holds %d live bindings, want 225", n)
	}
}
