package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hagent/hagent/ha/mip"
	"github.com/hagent/hagent/tools/mnsim/sim"
)

// tunFlags are the flags of a mobile node that stays up behind a NAT: with
// -tun, register (and renew) waits no more for one reply but runs the RFC
// 3519 UDP tunnel until interrupted.
type tunFlags struct {
	dev         string
	rebindEvery time.Duration
	keepalive   time.Duration
	mtu         int
}

// tunnelOverhead is what the UDP tunnel adds to an inner packet: IPv4 20,
// UDP 8, the tunnel data header 4.
const tunnelOverhead = 20 + 8 + 4

func tunnelFlags(fs *flag.FlagSet) *tunFlags {
	t := &tunFlags{}
	fs.StringVar(&t.dev, "tun", "", "with -udp-tunnel: stay up, carrying the home address's traffic through TUN device `NAME` (created, given the home address, up) until interrupted")
	fs.DurationVar(&t.rebindEvery, "rebind-every", 0, "with -tun: move to a new local port (a new NAT mapping) and re-register this often; SIGUSR1 does it once")
	fs.DurationVar(&t.keepalive, "keepalive", 0, "with -tun: send keepalives after this long without traffic (default: the interval the reply announces)")
	fs.IntVar(&t.mtu, "tun-mtu", 0, "with -tun: the device's MTU; 0: the path MTU towards the home agent less the tunnel's 32 bytes (1468 on a 1500 uplink), so that no tunnel data leaves fragmented")
	return t
}

func (t *tunFlags) enabled() bool { return t.dev != "" }

type tunnelJSON struct {
	Event     string `json:"event"` // "registered" or "stopped"
	Local     string `json:"local,omitempty"`
	Lifetime  uint16 `json:"lifetime,omitempty"`
	Keepalive string `json:"keepalive,omitempty"`
	Forced    bool   `json:"forced,omitempty"`
	Rebinds   uint64 `json:"rebinds"`
	// Counters, in the "stopped" event.
	Registrations  uint64 `json:"registrations,omitempty"`
	Keepalives     uint64 `json:"keepalives,omitempty"`
	KeepaliveEchos uint64 `json:"keepalive_echos,omitempty"`
	DataIn         uint64 `json:"data_in,omitempty"`
	DataOut        uint64 `json:"data_out,omitempty"`
	Dropped        uint64 `json:"dropped,omitempty"`
	RenewTimeouts  uint64 `json:"renew_timeouts,omitempty"`
	Error          string `json:"error,omitempty"`
}

// runTunnel is register -udp-tunnel ... -tun NAME: exit 0 when interrupted
// after a successful start, 1 when the home agent refused, 2 otherwise.
func runTunnel(ctx context.Context, mode string, o sim.Options, tf *tunFlags, jsonOut bool, stdout, stderr io.Writer) (int, error) {
	if !o.UDPTunnel.Present {
		return 2, errors.New("-tun needs -udp-tunnel (the tunnel is RFC 3519's UDP tunnel)")
	}
	if mode == "deregister" || o.Lifetime == 0 {
		return 2, errors.New("-tun needs a registration (a lifetime above 0)")
	}
	mtu, err := tf.mtu, error(nil)
	if mtu == 0 {
		ha := o.HA
		if ha.Port() == 0 {
			ha = netip.AddrPortFrom(ha.Addr(), 434)
		}
		if mtu, err = tunnelMTU(ha); err != nil {
			return 2, fmt.Errorf("-tun %s: %w (or give -tun-mtu)", tf.dev, err)
		}
	}
	dev, err := openTUN(tf.dev, o.Home, mtu)
	if err != nil {
		return 2, fmt.Errorf("-tun %s: %w", tf.dev, err)
	}
	defer dev.Close()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM)
	defer stop()
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	rebind := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-usr1:
				select {
				case rebind <- struct{}{}:
				default:
				}
			}
		}
	}()

	enc := json.NewEncoder(stdout)
	var st sim.TunnelStats
	err = sim.RunTunnel(ctx, sim.TunnelOptions{Reg: o, Dev: dev, Rebind: rebind, RebindEvery: tf.rebindEvery, Keepalive: tf.keepalive,
		Event: func(e sim.TunnelEvent) {
			forced := e.Reply.UDPTunnel.Flags&mip.UDPTunnelReplyForced != 0
			if jsonOut {
				enc.Encode(tunnelJSON{Event: "registered", Local: e.Local.String(), Lifetime: e.Reply.Lifetime,
					Keepalive: e.Keepalive.String(), Forced: forced, Rebinds: e.Rebinds})
				return
			}
			note := ""
			if forced {
				note = " forced"
			}
			fmt.Fprintf(stdout, "registered from %v lifetime %d keepalive %v rebinds %d%s\n", e.Local, e.Reply.Lifetime, e.Keepalive, e.Rebinds, note)
		}}, &st)
	j := tunnelJSON{Event: "stopped", Rebinds: st.Rebinds.Load(), Registrations: st.Registrations.Load(), Keepalives: st.Keepalives.Load(),
		KeepaliveEchos: st.KeepaliveEchos.Load(), DataIn: st.DataIn.Load(), DataOut: st.DataOut.Load(), Dropped: st.Dropped.Load(),
		RenewTimeouts: st.RenewTimeouts.Load()}
	if err != nil {
		j.Error = err.Error()
	}
	if jsonOut {
		enc.Encode(j)
	} else {
		fmt.Fprintf(stdout, "stopped: registrations %d rebinds %d keepalives %d (echoed %d) data in %d out %d dropped %d renewal timeouts %d\n",
			j.Registrations, j.Rebinds, j.Keepalives, j.KeepaliveEchos, j.DataIn, j.DataOut, j.Dropped, j.RenewTimeouts)
	}
	switch {
	case err == nil:
		return 0, nil
	case errors.Is(err, sim.ErrTunnelRefused):
		fmt.Fprintln(stderr, "mnsim:", err)
		return 1, nil
	}
	return 2, err
}
