package agent

import (
	"testing"
	"time"
)

// When the election's wake-ups are wanted for reading heartbeats: always
// while this member heartbeats periodically, a peer's heartbeat is not
// known yet, or no periodic peer's expiry is pending (a peer that just became active heartbeats from now on, and its
// first heartbeat must be read at once, not at this member's next timer up
// to a second later); otherwise from the advertisement after which the
// next one could come later than the expiry.
func TestAwakeFrom(t *testing.T) {
	const ms = int64(time.Millisecond)
	for _, tc := range []struct {
		periodic, known bool
		expiry, period  int64
		want            int64
	}{
		{true, true, 5000 * ms, 100 * ms, 0},
		{false, true, 0, 100 * ms, 0},
		{false, false, 5000 * ms, 100 * ms, 0},
		{false, true, 5000 * ms, 100 * ms, 4875 * ms},
	} {
		if got := awakeFrom(tc.periodic, tc.known, tc.expiry, tc.period); got != tc.want {
			t.Errorf("awakeFrom(%v, %v, %d, %d) = %d, want %d", tc.periodic, tc.known, tc.expiry, tc.period, got, tc.want)
		}
	}
}
