package itest

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/tools/failover"
	"github.com/hagent/hagent/tools/lab"
)

// tWriter sends the failover package's log lines to the test log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// TestFailoverKeepsBindings is the short version of tools/failover: three
// agents, 100 ms adverts, mobile nodes renewing on the virtual address all
// along, the active member SIGKILLed and its link taken down, three times.
// It asserts correctness only (figures go to docs/performance.md): a renewal
// sent after the crash is accepted on the virtual address, the member that
// answers holds every binding, and exactly one reachable member is active
// once the VRRP timers have run. 5 s is a hang guard, not a goal.
func TestFailoverKeepsBindings(t *testing.T) {
	lab.Require(t)
	bins := Bins(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	const nodes = 30
	rep, err := failover.Run(ctx, failover.Config{
		Bins: bins, Trials: 3, Nodes: nodes, Hagent: true,
		Intervals: []time.Duration{100 * time.Millisecond},
		Kinds:     []failover.Kind{failover.KillLinkDown},
		Log:       slog.New(slog.NewTextHandler(tWriter{t}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Trials) != 3 {
		t.Fatalf("want 3 trials, got %d", len(rep.Trials))
	}
	for _, tr := range rep.Trials {
		switch {
		case tr.Err != "":
			t.Errorf("trial %d: %s", tr.N, tr.Err)
		case tr.AnswerMS < 0 || tr.AnswerMS > 5000:
			t.Errorf("trial %d: no renewal accepted on the virtual address within 5 s of the crash (%.0f ms)", tr.N, tr.AnswerMS)
		case tr.Before != nodes || tr.After != nodes || len(tr.Missing) > 0:
			t.Errorf("trial %d: bindings %d before the crash, %d on the new active member; missing %v", tr.N, tr.Before, tr.After, tr.Missing)
		case tr.Actives != 1:
			t.Errorf("trial %d: %d reachable members active after the timers, want exactly 1", tr.N, tr.Actives)
		}
		t.Logf("trial %d: renewal answered %.0f ms after the crash (informational, not asserted)", tr.N, tr.AnswerMS)
	}
}
