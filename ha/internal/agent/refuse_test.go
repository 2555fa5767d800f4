package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/hasync"
	"github.com/hagent/hagent/ha/mip"
)

// A refused write's error becomes a reply code in one place: the group's
// newer write is a replay to the node (133, with our time in the
// Identification), anything else is no room (130).
func TestRefuseWrite(t *testing.T) {
	c, err := NewCore(testConfig(4))
	if err != nil {
		t.Fatal(err)
	}
	wall := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	c.req.ID = 0x1234_5678_9abc_def0
	for _, tt := range []struct {
		err  error
		code mip.Code
	}{
		{hasync.ErrStale, mip.CodeIDMismatch},
		{fmt.Errorf("agent: write: %w", hasync.ErrStale), mip.CodeIDMismatch},
		{binding.ErrFull, mip.CodeInsufficientResources},
		{nil, mip.CodeInsufficientResources}, // the write went in but left no entry
	} {
		c.v = &Verdict{ID: c.req.ID, Lifetime: 300}
		c.rq.ts = mip.Timestamp(wall)
		refuseWrite(c.v, tt.err, c.rq.ts, c.req.ID)
		if c.v.Lifetime != 0 {
			t.Errorf("%v: lifetime %d in a denial", tt.err, c.v.Lifetime)
		}
		if c.v.Code != tt.code {
			t.Errorf("%v: code %d, want %d", tt.err, c.v.Code, tt.code)
		}
		wantID := c.req.ID
		if tt.code == mip.CodeIDMismatch {
			wantID = mip.MismatchID(c.req.ID, wall)
		}
		if c.v.ID != wantID {
			t.Errorf("%v: Identification %#x, want %#x", tt.err, c.v.ID, wantID)
		}
	}
}
