package agent

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/hasync"
	"github.com/hagent/hagent/ha/mip"
)

// peerRestart restarts the harness's peer with an empty table and a new
// session, and lets the member hear it: its table request, the member's
// challenge, its answer (hasync spec §3.1, §5.4). The peer has not
// acknowledged anything of this start.
func (h *replHarness) peerRestart() {
	h.t.Helper()
	h.peerCfg.Session++
	h.peerTab = binding.New(8, 8)
	var err error
	if h.peer, err = hasync.New(h.peerCfg, h.peerTab); err != nil {
		h.t.Fatal(err)
	}
	h.peerUp()
	if m := h.a.grp.m; m.UpPeers() != 1 || m.AckingPeers() != 0 {
		h.t.Fatalf("after the peer's restart: up %d acking %d, want 1 and 0", m.UpPeers(), m.AckingPeers())
	}
}

// A member serving right after its peer restarted (promoted by that
// restart, say) has a peer that answered its challenge and has not
// acknowledged anything yet. Its acceptances wait for that peer's
// acknowledgement like any other: answered before it, they would be lost
// with this member if it died before the peer acknowledged them.
func TestRestartedPeerIsAwaited(t *testing.T) {
	h := newReplHarness(t, false)
	var logs bytes.Buffer
	h.r.log = slog.New(slog.NewTextHandler(&logs, nil))
	h.peerAcking()
	h.peerRestart()
	h.send(h.request(false))
	h.wantNoReply()
	if h.toPeer(true) == 0 {
		t.Fatal("the member sent the restarted peer nothing")
	}
	h.wantReply(mip.CodeAccepted)
	if got := counter(t, h.a, "replies.accepted_unreplicated"); got != 0 {
		t.Fatalf("accepted_unreplicated %d after the restarted peer acknowledged, want 0", got)
	}
	if h.a.grp.m.AckingPeers() != 1 {
		t.Fatal("the restarted peer acknowledged but does not count as acking")
	}

	// Restarted again, and silent from then on: the wait ends with no
	// acking peer, so the member serves alone, counted, and says so once
	// (at most a line a second) however many it accepts that way.
	h.peerRestart()
	for range 2 {
		h.send(h.request(false))
		h.wantNoReply()
		h.toPeer(false)
		h.waitOver()
		h.wantReply(mip.CodeAccepted)
	}
	if got := counter(t, h.a, "replies.accepted_unreplicated"); got != 2 {
		t.Fatalf("accepted_unreplicated %d, want 2", got)
	}
	if n := strings.Count(logs.String(), "registration accepted with no peer acknowledging"); n != 1 {
		t.Fatalf("%d log lines for the unreplicated acceptances, want 1:\n%s", n, logs.String())
	}
}
