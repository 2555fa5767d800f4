package hasync

import (
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
)

// withheld scripts the schedule behind the simulation's seed 734, in two
// members. Member 0 accepts a registration (id 5) for home h; an attacker
// on the path captures its Binding Update, and the network loses it and
// every retransmission and repair. Member 0 crashes: nobody else holds id 5, so the
// model marks it lost. Member 0 restarts with an empty table while cut
// off, so member 1 still holds its previous session as proven. With dereg,
// member 1 now accepts a de-registration of h (id 6). The attacker
// delivers the captured update to member 1: a sequence number of that
// session it never saw, fresh (a late original, not a replay). Then the
// partition heals and anti-entropy runs. It returns the simulation and
// its model.
func withheld(t *testing.T, dereg bool) (*simnet, model) {
	t.Helper()
	const h = 0x0a000018
	s := group(t, 2, nil)
	md := model{}
	seen := map[version]bool{}
	var held []byte
	s.tap = func(from, to int, data []byte) {
		if from == 0 && data[1] == TypeBindingUpdate && held == nil {
			held = append([]byte(nil), data...)
			carried(held, seen)
		}
	}
	s.drop = func(from, to int, typ uint8) bool {
		return from == 0 && (typ == TypeBindingUpdate || typ == TypeTableReply) // anti-entropy repairs too
	}
	if err := s.register(0, h, 5, 0xc6336455); err != nil {
		t.Fatal(err)
	}
	md[h] = append(md[h], write{id: 5, origin: s.nodes[0].id, coa: 0xc6336455})
	s.run(s.now + 20*sec) // every retransmission lost
	if held == nil {
		t.Fatal("the attacker captured no Binding Update")
	}
	s.tap, s.drop = nil, nil
	md.markLost(s, 0, seen)
	s.stop(0)
	s.side[0] = 1
	s.start(0)
	s.run(s.now + 5*sec)
	if dereg {
		if err := s.deregister(1, h, 6); err != nil {
			t.Fatal(err)
		}
		md[h] = append(md[h], write{id: 6, origin: s.nodes[1].id, tomb: true})
	}
	s.out = s.nodes[1].m.Receive(s.now, s.nodes[0].addr, RequiredTTL, held, s.out[:0])
	s.dispatch(1)
	clear(s.side)
	s.run(s.now + 60*sec)
	same(t, s)
	return s, md
}

// TestWithheldUpdateOfCrashedMember: a write only a crashed member held
// may come back from a datagram held back on the path, but only while the
// datagram is younger than the session's proof allows (spec §3.1 rule 6):
// the model allows that (and nothing else). This one, 25 s late with a
// dead interval of 18 s, is refused, and the group converges without it.
func TestWithheldUpdateOfCrashedMember(t *testing.T) {
	s, md := withheld(t, false)
	const h = 0x0a000018
	if w := md[h][0]; !w.lost || !w.withheld {
		t.Fatalf("model: id 5 lost=%v withheld=%v, want both (only member 0 held it, a captured datagram carries it)", w.lost, w.withheld)
	}
	if e := s.nodes[1].tab.Get(h); e != nil {
		t.Fatalf("member 1 holds %+v for %08x: an update 25 s late, older than the session's latest proof allows, was merged", e, h)
	}
	if got, want := state(s.nodes[0].tab), md.expected(s.nodes[0].tab); got != want {
		t.Fatalf("table differs from the model:\n%s\nwant:\n%s", got, want)
	}
}

// TestWithheldUpdateDoesNotUndoDeregistration: the same late update,
// when the survivor has de-registered the binding since, changes nothing
// (the tombstone is newer), and the model refuses a table in which the
// binding came back anyway.
func TestWithheldUpdateDoesNotUndoDeregistration(t *testing.T) {
	s, md := withheld(t, true)
	const h = 0x0a000018
	if w := md[h][0]; !w.lost || !w.withheld {
		t.Fatalf("model: id 5 lost=%v withheld=%v, want both", w.lost, w.withheld)
	}
	for i, nd := range s.nodes {
		if e := nd.tab.Get(h); e == nil || !e.Tombstone() || e.ID != 6 {
			t.Fatalf("member %d holds %+v for %08x, want the tombstone of id 6", i, e, h)
		}
	}
	if got, want := state(s.nodes[0].tab), md.expected(s.nodes[0].tab); got != want {
		t.Fatalf("table differs from the model:\n%s\nwant:\n%s", got, want)
	}
	back := binding.New(16, 16)
	if _, err := back.Put(binding.Entry{Home: h, CareOf: 0xc6336455, ID: 5, Origin: s.nodes[0].id, Granted: 3600,
		Registered: s.now, Expires: s.now + int64(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got, want := state(back), md.expected(back); got == want {
		t.Fatalf("the model accepts a de-registered binding that came back:\n%s", got)
	}
}
