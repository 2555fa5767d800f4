package agent

import (
	"net"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/hasync"
)

// In an idle pair at the default (both members in demand mode, each other's
// parameters known) nothing that arrives on the heartbeat port wakes a
// member: it waits for the member's next turn. Its demand-mode turns, at
// most DemandRefresh apart, bound how late that is, so that a peer that
// turns periodic is read within a second (hasync-spec §4.12, Reading),
// although the refresh that used to be that turn now leaves only every
// 3.75–5 s. Here the election does not tick and nothing asks the console:
// a datagram sent to the port is read at the member's own turn, within
// DemandRefresh (twice that asserted: a loaded machine's timer may be
// late; without the turns it waited for the next refresh, up to 5 s).
func TestDemandTurnReadsWithinDemandRefresh(t *testing.T) {
	needGroupSockets(t)
	a, _ := newDemandPair(t, nil)
	st := &a.grp.hbStats
	hb, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(a.cfg.Group.Port) + hasync.HeartbeatPortOffset})
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	// Past the repeats of the members' announcements to each other (three,
	// a second apart): a send is a turn too.
	time.Sleep(hasync.DemandRepeats * hasync.DemandRefresh)
	for k := range 3 {
		time.Sleep(time.Duration(k+1) * 317 * time.Millisecond) // at another phase of the member's turns
		read, arrivals := st.datagrams.Load(), st.arrivalTurns.Load()
		sent := time.Now()
		if _, err := hb.Write([]byte("turn?")); err != nil {
			t.Fatal(err)
		}
		for st.datagrams.Load() == read {
			if took := time.Since(sent); took > 2*hasync.DemandRefresh {
				t.Fatalf("datagram %d not read %v after it was sent: no turn of the member's within DemandRefresh", k+1, took.Round(time.Millisecond))
			}
			time.Sleep(2 * time.Millisecond)
		}
		if st.arrivalTurns.Load() != arrivals {
			t.Fatalf("datagram %d read on its arrival: the member is not reading at its turns (idle pair)", k+1)
		}
		t.Logf("datagram %d read %v after it was sent", k+1, time.Since(sent).Round(time.Millisecond))
	}
}
