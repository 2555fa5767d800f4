package itest

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/tools/lab"
)

// groupConfig is member i (1-based) of a three-agent group sharing
// 192.0.2.1 through VRRP (100 ms adverts), replicating bindings with the
// seeds' protocol. Priorities 130, 120, 110: member 1 wins the election.
func groupConfig(i int) string {
	return fmt.Sprintf(`
[agent]
interface = "eth0"
address = "192.0.2.1%d"
virtual_address = "192.0.2.1"
home_network = "192.0.2.0/24"
console_socket = "@SOCKET@"
log_level = "debug"
capacity = 20000

[[node]]
name = "fleet"
pool = "192.0.2.64/26"
spi = 300
key = "text:fleet-secret-01234"

[group]
enabled = true
key = "text:group-secret-for-tests-0123"
anti_entropy_interval = "2s"

[vrrp]
enabled = true
vrid = 51
priority = %d
advert_interval = "100ms"
garp_count = 1

[datapath]
enabled = false
`, i, 140-10*i)
}

func redundancy(t *testing.T, a *Agent) *console.Redundancy {
	t.Helper()
	resp, err := console.Call(a.Socket, console.Request{Cmd: "show redundancy"}, 5*time.Second)
	if err != nil || resp.Redundancy == nil {
		t.Fatalf("show redundancy: %v %+v", err, resp)
	}
	return resp.Redundancy
}

// eventually polls cond every 50 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last state: %s", what, timeout, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestGroupReplicationAndFailover(t *testing.T) {
	l := lab.NewT(t)
	mn := l.HostT(t, "mn", "192.0.2.50/24")
	var agents []*Agent
	for i := 1; i <= 3; i++ {
		h := l.HostT(t, fmt.Sprintf("ha%d", i), fmt.Sprintf("192.0.2.1%d/24", i))
		agents = append(agents, StartAgent(t, h, groupConfig(i)))
	}
	eventually(t, 10*time.Second, "member 1 active, others standby", func() (bool, string) {
		var s []string
		ok := true
		for i, a := range agents {
			r := redundancy(t, a)
			s = append(s, r.Role)
			want := "standby"
			if i == 0 {
				want = "active"
			}
			ok = ok && strings.HasPrefix(r.Role, want) && r.Synced
		}
		return ok, strings.Join(s, ", ")
	})

	// Registrations on the virtual address reach the active member and are
	// replicated to both others. A node retransmits (RFC 5944 §3.6.3): a
	// reply held for the peers' acknowledgements on a loaded machine may
	// come after mnsim's one second.
	const n = 20
	for k := 0; k < n; k++ {
		home := fmt.Sprintf("192.0.2.%d", 65+k)
		r, code := mnsimJSON(t, mn, "register", "-ha", "192.0.2.1", "-home", home, "-coa", "198.51.100.7",
			"-spi", "300", "-key", "fleet-secret-01234", "-lifetime", "600", "-retries", "2")
		if code != 0 || r.Code != 0 {
			t.Fatalf("register %s: exit %d %+v", home, code, r)
		}
	}
	for i, a := range agents {
		eventually(t, 10*time.Second, fmt.Sprintf("member %d holds %d bindings", i+1, n), func() (bool, string) {
			b := bindings(t, a)
			return b.Live == n, fmt.Sprintf("%d live", b.Live)
		})
	}

	// Crash the active member: member 2 takes over the virtual address and
	// answers renewals for the bindings it learnt from the group.
	killed := time.Now()
	if err := agents[0].Proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-agents[0].Proc.Done()
	// The dead member's kernel still holds the virtual address; a real
	// crash takes the box down: take its link down too, as the notes advise.
	if err := agents[0].Host.LinkDown(); err != nil {
		t.Fatal(err)
	}
	var answered time.Duration
	for {
		r, code := mnsimJSON(t, mn, "renew", "-ha", "192.0.2.1", "-home", "192.0.2.65", "-coa", "198.51.100.9",
			"-spi", "300", "-key", "fleet-secret-01234", "-lifetime", "600", "-timeout", "100ms")
		if code == 0 && r.Code == 0 {
			answered = time.Since(killed)
			break
		}
		if time.Since(killed) > 10*time.Second {
			t.Fatalf("no member answered on the virtual address within 10s of the crash: %+v", r)
		}
	}
	t.Logf("failover: renewal answered on the virtual address %v after SIGKILL of the active member", answered.Round(time.Millisecond))
	if r := redundancy(t, agents[1]); !strings.HasPrefix(r.Role, "active") {
		t.Fatalf("member 2 after the crash: %s", r.Role)
	}
	for i, a := range agents[1:] {
		eventually(t, 10*time.Second, fmt.Sprintf("member %d keeps every binding with the renewal", i+2), func() (bool, string) {
			b := bindings(t, a)
			row := findRow(b, "192.0.2.65")
			return b.Live == n && row != nil && row.CareOf == "198.51.100.9", fmt.Sprintf("%d live, %+v", b.Live, row)
		})
	}
}
