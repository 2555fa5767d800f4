package agent

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sync/atomic"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/deadline"
	"github.com/hagent/hagent/ha/internal/groupio"
	"github.com/hagent/hagent/ha/internal/hasync"
	"github.com/hagent/hagent/ha/internal/hsrp"
	"github.com/hagent/hagent/ha/internal/role"
	"github.com/hagent/hagent/ha/internal/vrrp"
)

const (
	groupBufs    = 256  // group datagrams in flight between the reader and the owner
	groupBufSize = 2048 // a full-MTU table reply fits
)

// gpkt is one datagram of the group protocol, handed from the reader to the
// owner and back through free lists (no allocation per datagram).
type gpkt struct {
	buf []byte
	n   int
	src netip.Addr
	ttl uint8
}

// group is the redundancy side of the agent: the seeds' binding-table
// protocol (hasync over groupio) and the virtual router election (VRRP or
// HSRP). Every field is owned by the agent's owner goroutine except the
// channels and the sockets' own goroutines.
type group struct {
	m     *hasync.Machine
	conn  *groupio.Conn
	hb    *groupio.Conn // heartbeat port, lazy (heartbeat_io.go); nil: heartbeat off
	hbBuf []byte
	awake chan struct{} // the election was awake: read the heartbeats queued
	// wantAwake: agent-clock time from which the election's wake-ups are
	// wanted (armAwake); period: its advertisement interval, ns.
	wantAwake atomic.Int64
	// lastAwake, awakeGap: when the election's hook last ran and how long
	// after the run before (the spacing of its wake-ups: demandWindow).
	lastAwake, awakeGap atomic.Int64
	period              int64
	hacts               []hasync.Action
	hbFailed            bool
	hbStep              deadline.WallStep // wall-clock steps between heartbeat reads
	hbMode              string            // the active member's heartbeat mode, and why (activeHeartbeat)
	// hbReady: read the heartbeat socket now (an arrival while eager, or a
	// drain cut at its bound); hbWatch: the watcher while eager
	// (heartbeat_watch.go).
	hbReady       chan struct{}
	hbReadAt      int64 // agent clock: the heartbeat socket's last drain (drainOnTurn)
	hbWatch       *hbWatch
	hbWatchBroken atomic.Bool
	hbStats       hbStats
	rx            chan *gpkt
	free          chan *gpkt
	peers         []netip.Addr // unicast-only mode: every message to each of them

	elector  role.Elector
	mode     string // "standalone", "vrrp", "hsrp", "group"
	role     role.Change
	since    time.Time
	changes  uint64
	sendErrs uint64
	notify   string
	pinfo    []hasync.PeerInfo
}

// newGroup builds the machine and opens the group socket when group.enabled,
// and prepares the elector when vrrp or hsrp is enabled. It starts nothing.
func (a *Agent) newGroup() (*group, error) {
	g := &group{mode: "standalone", since: time.Now()}
	if a.cfg.Group.Enabled {
		if err := a.openGroupProtocol(g); err != nil {
			return nil, err
		}
	}
	if err := a.newElector(g); err != nil {
		return nil, err
	}
	switch {
	case g.elector != nil:
		// Nobody is answered until the election says we are active.
		a.core.SetServing(false)
		g.role = role.Change{Role: role.Passive, Protocol: g.mode, Reason: "starting"}
		if g.m != nil {
			g.elector.SetHold(true) // until the table download is done (claims 9-10)
		}
	case g.m != nil:
		// A group without an election: every member serves once its table
		// is initialized from the others.
		a.core.SetServing(false)
		g.role = role.Change{Role: role.Passive, Protocol: "group", Reason: "waiting for the binding table"}
	default:
		g.role = role.Change{Role: role.Active, Protocol: "standalone", Reason: "no redundancy configured"}
	}
	return g, nil
}

// openGroupProtocol builds the group protocol's machine and socket.
func (a *Agent) openGroupProtocol(g *group) error {
	m, err := a.newGroupMachine()
	if err != nil {
		return err
	}
	cfg := a.cfg
	gc := &cfg.Group
	opts := groupio.Options{Interface: cfg.Agent.Interface, Local: cfg.Agent.Address, Port: gc.Port}
	if len(gc.Peers) == 0 {
		opts.Group = gc.Address
	}
	conn, err := groupio.Open(opts)
	if err != nil {
		return fmt.Errorf("agent: group socket: %w", err)
	}
	g.m, g.conn, g.peers = m, conn, gc.Peers
	// Also with the heartbeat off: this member still hears its peers'.
	if err := openHeartbeat(g, opts); err != nil {
		conn.Close()
		return err
	}
	g.rx = make(chan *gpkt, groupBufs)
	g.free = make(chan *gpkt, groupBufs)
	for i := 0; i < groupBufs; i++ {
		g.free <- &gpkt{buf: make([]byte, groupBufSize)}
	}
	g.mode = "group"
	return nil
}

// newGroupMachine builds the group protocol's machine on the Core's table
// and hands the Core's table writes to it.
func (a *Agent) newGroupMachine() (*hasync.Machine, error) {
	cfg := a.cfg
	gc := &cfg.Group
	var sess [4]byte
	for binary.BigEndian.Uint32(sess[:]) == 0 {
		_, _ = rand.Read(sess[:])
	}
	var entropy [8]byte // session challenge nonces
	_, _ = rand.Read(entropy[:])
	// A tombstone must outlive any binding it could meet (hasync
	// refuses a TTL below the longest lifetime: a stale update could
	// bring a de-registered binding back).
	ttl := cfg.Agent.TombstoneLifetime
	if maxLt := time.Duration(cfg.Agent.MaxLifetime) * time.Second; ttl < maxLt {
		ttl = maxLt
	}
	hc := hasync.Config{
		ID:           cfg.Agent.AgentID,
		Addr:         cfg.Agent.Address,
		Session:      binary.BigEndian.Uint32(sess[:]),
		Entropy:      binary.BigEndian.Uint64(entropy[:]),
		MaxPeers:     gc.MaxMembers - 1,
		Keys:         groupKeys(gc),
		SendKey:      gc.KeyID,
		Peers:        gc.Peers,
		AckTimeout:   gc.AckTimeout,
		MaxRetries:   gc.MaxRetries,
		DigestPeriod: gc.AntiEntropyInterval,
		TombstoneTTL: ttl,
		MaxLifetime:  time.Duration(cfg.Agent.MaxLifetime) * time.Second,
		Admit:        a.core.AdmitHome,
		AdmitPrefix:  a.core.AdmitPrefix,
		AdmitNAI:     a.core.AdmitNAI,
		Logger:       a.log.With("sub", "group"),
	}
	heartbeatConfig(cfg, &hc)
	m, err := hasync.New(hc, a.core.table)
	if err != nil {
		return nil, fmt.Errorf("agent: group protocol: %w", err)
	}
	a.core.SetGroup(m)
	return m, nil
}

// newElector builds the VRRP or HSRP runner, if one is configured.
func (a *Agent) newElector(g *group) error {
	cfg := a.cfg
	prefix := cfg.Agent.HomeNetwork.Bits()
	log := a.log.With("sub", "election")
	switch {
	case cfg.VRRP.Enabled && a.testElector != nil:
		g.elector, g.mode, g.period = a.testElector(a.awakeFn(g)), "vrrp", int64(cfg.VRRP.AdvertInterval)
	case cfg.VRRP.Enabled:
		v := &cfg.VRRP
		r, err := vrrp.NewRunner(vrrp.RunnerConfig{Interface: cfg.Agent.Interface, PrefixLen: prefix, Logger: log,
			Machine: vrrp.Config{VRID: v.VRID, Priority: v.Priority, AdvertInterval: v.AdvertInterval,
				Preempt: v.Preempt, PreemptDelay: v.PreemptDelay, AcceptMode: v.Accept,
				Primary: cfg.Agent.Address, Addrs: []netip.Addr{cfg.Agent.VirtualAddress},
				GARPCount: v.GARPCount, GARPRepeat: v.GARPInterval,
				GARPLowerPrioCount: v.Reclaim.LowerPrioCount, GARPLowerPrioInterval: v.Reclaim.LowerPrioInterval,
				GARPRefresh: v.Reclaim.Refresh, GARPRefreshCount: v.Reclaim.RefreshCount,
				UseVirtualMAC: v.UseVirtualMAC}, Awake: a.awakeFn(g)})
		if err != nil {
			return fmt.Errorf("agent: vrrp: %w", err)
		}
		g.elector, g.mode, g.notify = r, "vrrp", v.NotifyCommand
		g.period = int64(v.AdvertInterval)
	case cfg.HSRP.Enabled:
		h := &cfg.HSRP
		auth, err := hsrp.AuthString(h.Auth)
		if err != nil {
			return fmt.Errorf("agent: hsrp.auth: %w", err)
		}
		r, err := hsrp.NewRunner(hsrp.RunnerConfig{Interface: cfg.Agent.Interface, PrefixLen: prefix, Logger: log,
			Machine: hsrp.Config{Group: h.Group, Priority: h.Priority, Preempt: h.Preempt,
				Auth: auth, VIP: cfg.Agent.VirtualAddress,
				Hellotime: h.Hello, Holdtime: h.Hold, Primary: cfg.Agent.Address,
				GARPCount: 3, UseVirtualMAC: h.UseVirtualMAC,
				GARPLowerPrioCount: h.Reclaim.LowerPrioCount, GARPLowerPrioInterval: h.Reclaim.LowerPrioInterval,
				GARPRefresh: h.Reclaim.Refresh, GARPRefreshCount: h.Reclaim.RefreshCount}, Awake: a.awakeFn(g)})
		if err != nil {
			return fmt.Errorf("agent: hsrp: %w", err)
		}
		g.elector, g.mode = r, "hsrp"
		g.period = int64(h.Hello)
	}
	return nil
}

// start launches the group reader and the elector, and sends the table
// request (claim 10). The elector runs on its own context, cancelled by
// stopElector after the final advertisement has left from the virtual
// address (RFC 5944 §2: lifetime 0 on shutdown).
func (a *Agent) startGroup() {
	g := a.grp
	if g.m != nil {
		a.wg.Add(1)
		go a.groupReadLoop()
		a.perform(a.now(), a.reg.Handle(a.now(), Event{Kind: EvStart}, a.acts[:0]))
	}
	if g.elector != nil {
		ctx, cancel := context.WithCancel(context.Background())
		a.stopElector = cancel
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if err := g.elector.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Error("election stopped", "protocol", g.mode, "err", err)
			}
		}()
	}
}

func (a *Agent) groupReadLoop() {
	defer a.wg.Done()
	g := a.grp
	defer close(g.rx)
	for p := range g.free {
		n, src, ttl, err := g.conn.Read(p.buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrClosed) {
				a.log.Error("group socket read failed", "err", err)
			}
			return
		}
		p.n, p.src, p.ttl = n, src, ttl
		g.rx <- p
	}
}

// groupReceive feeds one datagram to the registrar (owner goroutine).
func (a *Agent) groupReceive(p *gpkt) {
	now := a.now()
	acts := a.reg.Handle(now, Event{Kind: EvGroup, Src: p.src, TTL: p.ttl, Pkt: p.buf[:p.n]}, a.acts[:0])
	a.grp.free <- p
	a.perform(now, acts)
}

// groupAction performs one of the group machine's actions the registrar
// passed on.
func (a *Agent) groupAction(now int64, act *hasync.Action) (initialized bool) {
	g := a.grp
	switch act.Kind {
	case hasync.ActMulticast:
		var err error
		c := g.conn
		if g.hb != nil && hasync.IsHeartbeat(act.Pkt) {
			c = g.hb
		}
		if len(g.peers) > 0 {
			for _, p := range g.peers {
				if e := c.SendTo(act.Pkt, p); e != nil {
					err = e
				}
			}
		} else {
			err = c.SendGroup(act.Pkt)
		}
		if err != nil {
			g.sendErrs++
		}
	case hasync.ActUnicast:
		c := g.conn
		if g.hb != nil && hasync.IsHeartbeat(act.Pkt) {
			c = g.hb
		}
		if err := c.SendTo(act.Pkt, act.To); err != nil {
			g.sendErrs++
		}
	case hasync.ActPeerDown:
		a.peerDown(now, act.To)
	case hasync.ActPeerAlive:
		a.peerAlive(act.To)
	case hasync.ActInitialized:
		return true
	}
	return false
}

// initialized: the table is initialized from the group (or this member is
// alone): the election may take mastership, or a group without one serves.
func (a *Agent) initialized() {
	g := a.grp
	a.log.Info("binding table initialized from the group", "bindings", a.core.table.Len(), "peers", len(g.m.Peers(g.pinfo[:0])))
	if g.elector != nil {
		g.elector.SetHold(false)
	} else {
		a.setRole(role.Change{Role: role.Active, Protocol: "group", Reason: "table initialized"})
	}
}

// setRole applies a role change: serve or not, log it, tell the notify
// command. The datapath follows here when it exists.
func (a *Agent) setRole(ch role.Change) {
	g := a.grp
	prev := g.role.Role
	g.role = ch
	g.since = time.Now()
	g.changes++
	active := ch.Role == role.Active
	// Serve or not; what is held is answered now when we stop.
	a.perform(a.now(), a.reg.Handle(a.now(), Event{Kind: EvRole, Active: active}, a.acts[:0]))
	// Program every binding before the gratuitous ARPs pull the traffic
	// to us (takeover), or withdraw when we stop being active.
	a.activateDataplane(active)
	a.advertise(active)
	a.log.Info("role change", "from", prev, "to", ch.Role, "protocol", ch.Protocol, "state", ch.State,
		"reason", ch.Reason, "peer", ch.Peer, "bindings", a.core.table.Len())
	if active && g.elector != nil {
		// Away mobile nodes' home addresses move with us (RFC 5944 §4.6).
		var away []netip.Addr
		a.core.table.Range(func(e *binding.Entry) bool {
			if !e.Tombstone() && e.Key == 0 { // a shared home address is nobody's on the link
				away = append(away, binding.U32Addr(e.Home))
			}
			return true
		})
		if len(away) > 0 {
			if err := g.elector.Announce(away); err != nil {
				a.log.Warn("gratuitous ARP for away nodes failed", "err", err)
			}
		}
	}
	if g.notify != "" {
		cmd := exec.Command(g.notify, ch.Role.String(), ch.State)
		go func() {
			if out, err := cmd.CombinedOutput(); err != nil {
				a.log.Warn("notify command failed", "cmd", g.notify, "err", err, "output", string(out))
			}
		}()
	}
}

// closeGroup closes the group socket so that its reader returns.
func (a *Agent) closeGroup() {
	a.stopWatch()
	if a.grp != nil && a.grp.conn != nil {
		_ = a.grp.conn.Close()
	}
	if a.grp != nil && a.grp.hb != nil {
		_ = a.grp.hb.Close()
	}
}

// groupKeys lists the keys a member accepts: the one it sends with and the
// ones [[group.accept_keys]] adds while keys rotate.
func groupKeys(g *config.Group) []hasync.Key {
	keys := []hasync.Key{{ID: g.KeyID, Secret: g.Key}}
	for _, k := range g.AcceptKeys {
		keys = append(keys, hasync.Key{ID: k.ID, Secret: k.Key})
	}
	return keys
}
