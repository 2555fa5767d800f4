package vrrp

import (
	"errors"
	"math"
	"net/netip"
	"time"

	"github.com/hagent/hagent/ha/internal/role"
)

// State is the RFC 5798 §6.4 state.
type State uint8

const (
	Initialize State = iota
	Backup
	Master
)

func (s State) String() string {
	switch s {
	case Initialize:
		return "Initialize"
	case Backup:
		return "Backup"
	case Master:
		return "Master"
	}
	return "invalid"
}

// NoDeadline is returned when no timer runs (Initialize state).
const NoDeadline = time.Duration(math.MaxInt64)

// Config is one virtual router as this member runs it.
type Config struct {
	VRID     uint8
	Priority uint8 // 1..255; 255 = address owner
	// AdvertInterval is Advertisement_Interval (10 ms .. 40.95 s).
	AdvertInterval time.Duration
	Preempt        bool
	// PreemptDelay (not in RFC 5798; as keepalived's preempt_delay): a
	// preempting backup waits this long after first seeing a lower-priority
	// master before it takes over. 0 = RFC behaviour.
	PreemptDelay time.Duration
	// AcceptMode (§6.1): the master accepts packets addressed to the virtual
	// addresses although it does not own them. A Home Agent needs it (its
	// registrations arrive on the virtual address); the runner reports it,
	// the datapath acts on it.
	AcceptMode bool
	// Primary is this router's primary IPv4 address on the interface (the
	// source of its adverts; breaks ties between equal priorities).
	Primary netip.Addr
	Addrs   []netip.Addr // virtual addresses
	// GARPCount gratuitous ARPs per virtual address on becoming master;
	// GARPRepeat, if > 0, sends a second burst that long later (as
	// keepalived's garp_master_delay), for switches that were slow to learn.
	GARPCount  int
	GARPRepeat time.Duration
	// GARPLowerPrioCount gratuitous ARPs per virtual address, with an
	// immediate advert, whenever a master learns that another router may
	// have claimed the addresses: it hears a lower-priority advert (that
	// router believes it is master: a partition ending, or a backup that
	// took over while we were stalled), or its own adverts were late by so
	// much that a backup's Master_Down_Timer may have run out. The other
	// router steps down silently, so without this the hosts keep the
	// addresses on its MAC until their neighbour entries time out (like
	// keepalived's garp_lower_prio_repeat). 0 = never.
	GARPLowerPrioCount int
	// GARPLowerPrioInterval is the least time between two such bursts: a
	// flood of forged lower-priority adverts costs the LAN one burst per
	// interval. A trigger inside the interval is counted (Suppressed) and
	// folded into one burst at its end, so the last word is always ours.
	GARPLowerPrioInterval time.Duration
	// GARPRefresh, if > 0: a master re-announces every GARPRefresh,
	// GARPRefreshCount per address (like keepalived's garp_master_refresh).
	GARPRefresh      time.Duration
	GARPRefreshCount int
	// UseVirtualMAC: the master answers for the addresses with the virtual
	// router MAC 00-00-5E-00-01-{VRID} (§7.3; the runner's macvlan) instead
	// of the interface's own MAC.
	UseVirtualMAC bool
}

// Validate checks ranges; errors name the field.
func (c *Config) Validate() error {
	switch {
	case c.VRID == 0:
		return errors.New("vrrp: vrid 0 is invalid (1..255)")
	case c.Priority == 0:
		return errors.New("vrrp: priority 0 is reserved for resigning (1..255)")
	case c.AdvertInterval < 10*time.Millisecond || c.AdvertInterval > MaxInterval:
		return errors.New("vrrp: advert interval out of range 10ms..40.95s")
	case !c.Primary.Is4():
		return errors.New("vrrp: primary address must be IPv4")
	case len(c.Addrs) == 0 || len(c.Addrs) > MaxAddrs:
		return errors.New("vrrp: need 1..32 virtual addresses")
	case c.GARPCount < 0:
		return errors.New("vrrp: garp count must be >= 0")
	case c.GARPLowerPrioCount < 0 || c.GARPRefreshCount < 0:
		return errors.New("vrrp: garp lower-priority and refresh counts must be >= 0")
	case c.GARPLowerPrioCount > 0 && c.GARPLowerPrioInterval <= 0:
		return errors.New("vrrp: garp lower-priority interval must be > 0 (it rate-limits the bursts)")
	case c.GARPRefresh < 0:
		return errors.New("vrrp: garp refresh must be >= 0")
	}
	for _, a := range c.Addrs {
		if !a.Is4() {
			return errors.New("vrrp: virtual addresses must be IPv4")
		}
	}
	return nil
}

// EventKind says what happened.
type EventKind uint8

const (
	EvStartup  EventKind = iota + 1 // §6.4.1 Startup
	EvShutdown                      // §6.4.2/3 Shutdown (resign with priority 0 if master)
	EvAdvert                        // a validated advertisement (Receive returned nil)
	EvTimer                         // now has reached the returned deadline
	EvPriority                      // tracking changed the priority: Priority
	EvHold                          // Hold = true: not yet initialized from the group
	EvSilent                        // the group heartbeat of Src stopped (silent.go)
	EvAlive                         // Src, reported silent, spoke again (silent.go)
)

// Event is one input. For EvAdvert: Src (IP source), Priority, Interval.
type Event struct {
	Kind     EventKind
	Src      netip.Addr
	Priority uint8
	Interval time.Duration
	Hold     bool
	Silent   time.Duration // EvSilent: how long Src has been silent
	// Arrived (EvAdvert) is when an advert read after the fact arrived, on
	// the machine's clock (the backup's lazy socket: follow.go); 0: now.
	Arrived time.Duration
}

// ActionKind is what the runner must do.
type ActionKind uint8

const (
	ActSendAdvert   ActionKind = iota + 1 // send an advert with Priority
	ActAddVIP                             // add the virtual addresses to the interface
	ActRemoveVIP                          // remove them
	ActGARP                               // Count gratuitous ARPs per virtual address
	ActBecomeMaster                       // role change (Reason)
	ActBecomeBackup                       // role change (Reason)
	ActBecomeInit                         // role change (Reason)
)

// Action is one output, executed by the runner in order. For ActGARP,
// Reason says why when it is not the takeover's announcement.
type Action struct {
	Kind     ActionKind
	Priority uint8
	Count    int
	Reason   string
	Peer     netip.Addr
}

// Reasons (constant strings: no allocation on the hot path).
const (
	ReasonOwner       = "startup as address owner (priority 255)"
	ReasonStartup     = "startup"
	ReasonMasterDown  = "master down timer expired (no advertisement)"
	ReasonResigned    = "master resigned (priority 0), skew time expired"
	ReasonPreempt     = "preempted a lower-priority master"
	ReasonHigher      = "advertisement with higher priority"
	ReasonEqualHigher = "advertisement with equal priority from a higher address"
	ReasonShutdown    = "shutdown"

	// Reasons of an ActGARP outside the takeover.
	ReasonReclaimLower = "lower-priority advertisement while master: re-announcing the virtual addresses"
	ReasonReclaimStall = "own adverts were late enough for a backup to take over: re-announcing the virtual addresses"
	ReasonRefresh      = "periodic refresh"
)

// Machine is the §6.4 state machine of one virtual router. Not safe for
// concurrent use: the runner's goroutine owns it.
type Machine struct {
	cfg   Config
	state State
	prio  uint8 // configured priority after tracking
	held  bool

	masterAdverInterval time.Duration
	adverTimer          time.Duration // Master: next advert
	masterDownTimer     time.Duration // Backup: take over
	garpTimer           time.Duration // Master: second GARP burst
	lowerSince          time.Duration // Backup+PreemptDelay: first lower advert
	lowerSeen           bool
	resigned            bool // down timer was set to skew by a priority-0 advert
	master              netip.Addr

	refreshTimer time.Duration   // Master: next periodic announcement
	reann        role.Reannounce // Master: re-announcements, rate-limited
	masterPrio   uint8           // the master's advertised priority as last heard
	silent       bool            // down timer was set to skew by EvSilent
	heardAt      time.Duration   // Backup: when the master's advert was last learnt
	// Master after EvSilent: the master it replaced (invalid otherwise).
	replaced, silentFrom netip.Addr
}

// New returns a machine in Initialize. cfg must have passed Validate.
func New(cfg Config) *Machine {
	return &Machine{cfg: cfg, prio: cfg.Priority, masterAdverInterval: cfg.AdvertInterval,
		adverTimer: NoDeadline, masterDownTimer: NoDeadline, garpTimer: NoDeadline, refreshTimer: NoDeadline}
}

// Suppressed counts the re-announcement triggers (see
// Config.GARPLowerPrioCount) that came inside the rate limit's interval and
// were folded into a later burst.
func (m *Machine) Suppressed() uint64 { return m.reann.Suppressed() }

// State is the current state.
func (m *Machine) State() State { return m.state }

// Held reports the hold input.
func (m *Machine) Held() bool { return m.held }

// Master is the address of the current master as last heard (Backup).
func (m *Machine) MasterAddr() netip.Addr { return m.master }

// MasterPriority is the priority the current master advertised (ours when
// we are Master).
func (m *Machine) MasterPriority() uint8 {
	if m.state == Master {
		return m.Priority()
	}
	return m.masterPrio
}

// MasterAdverInterval is the interval learned from the master (§6.1).
func (m *Machine) MasterAdverInterval() time.Duration { return m.masterAdverInterval }

// Priority is the priority this router uses in elections and adverts now:
// the configured one after tracking, or 1 while held (see Hold).
//
// The hold rule: while the agent is not yet initialized from the group, the
// router behaves as the least preferred member: priority 1 (also an owner),
// never preempts, and an owner does not go straight to Master on Startup.
// It therefore becomes Master only when no other member has advertised for a
// whole Master_Down_Interval computed with priority 1 (the longest skew), i.e.
// when nobody else could serve, and any un-held member with preemption takes
// over from it. Releasing the hold restores the priority; a Master
// re-advertises at once so preempting backups see the change.
func (m *Machine) Priority() uint8 {
	if m.held {
		return 1
	}
	return m.prio
}

// preempt: Preempt_Mode, except that the address owner always preempts
// (§6.1), and a held router never does.
func (m *Machine) preempt() bool { return (m.cfg.Preempt || m.prio == 255) && !m.held }

// SkewTime is ((256 - Priority) * Master_Adver_Interval) / 256 (§6.1).
func (m *Machine) SkewTime() time.Duration {
	return time.Duration(256-int64(m.Priority())) * m.masterAdverInterval / 256
}

// MasterDownInterval is 3 * Master_Adver_Interval + Skew_Time (§6.1).
func (m *Machine) MasterDownInterval() time.Duration {
	return 3*m.masterAdverInterval + m.SkewTime()
}

func (m *Machine) deadline() time.Duration {
	switch m.state {
	case Master:
		d := min(m.adverTimer, m.garpTimer, m.refreshTimer)
		if at, ok := m.reann.Deadline(); ok {
			d = min(d, at)
		}
		return d
	case Backup:
		return m.masterDownTimer
	}
	return NoDeadline
}

// Handle applies one event at monotonic time now, appends the actions to out
// and returns them with the next deadline (NoDeadline if none). The runner
// calls Handle(EvTimer) once now >= deadline.
func (m *Machine) Handle(now time.Duration, ev Event, out []Action) ([]Action, time.Duration) {
	switch ev.Kind {
	case EvStartup:
		if m.state == Initialize {
			out = m.startup(now, out)
		}
	case EvShutdown:
		out = m.shutdown(out)
	case EvAdvert:
		out = m.advert(now, ev, out)
	case EvTimer:
		out = m.timer(now, out)
	case EvPriority:
		p := max(ev.Priority, 1) // resigning is EvShutdown, not priority 0
		old := m.Priority()
		m.prio = p
		out = m.priorityChanged(now, old, out)
	case EvHold:
		old := m.Priority()
		m.held = ev.Hold
		out = m.priorityChanged(now, old, out)
	case EvSilent:
		m.peerSilent(now, ev)
	case EvAlive:
		out = m.peerAlive(now, ev, out)
	}
	return out, m.deadline()
}

// §6.4.1
func (m *Machine) startup(now time.Duration, out []Action) []Action {
	if m.Priority() == 255 {
		return m.becomeMaster(now, ReasonOwner, netip.Addr{}, out)
	}
	m.masterAdverInterval = m.cfg.AdvertInterval
	m.masterDownTimer = now + m.MasterDownInterval()
	m.state = Backup
	m.lowerSeen, m.resigned = false, false
	return append(out, Action{Kind: ActBecomeBackup, Reason: ReasonStartup})
}

func (m *Machine) becomeMaster(now time.Duration, reason string, peer netip.Addr, out []Action) []Action {
	m.state = Master
	m.masterDownTimer = NoDeadline
	m.adverTimer = now + m.cfg.AdvertInterval
	m.master = m.cfg.Primary
	m.garpTimer, m.refreshTimer = NoDeadline, NoDeadline
	if m.cfg.GARPRepeat > 0 && m.cfg.GARPCount > 0 {
		m.garpTimer = now + m.cfg.GARPRepeat
	}
	if m.cfg.GARPRefresh > 0 && m.cfg.GARPRefreshCount > 0 {
		m.refreshTimer = now + m.cfg.GARPRefresh
	}
	// Our takeover announcement counts as the last re-announcement.
	m.reann.Sent(now, m.cfg.GARPLowerPrioInterval)
	out = append(out,
		Action{Kind: ActAddVIP},
		Action{Kind: ActSendAdvert, Priority: m.Priority()},
		Action{Kind: ActGARP, Count: m.cfg.GARPCount},
		Action{Kind: ActBecomeMaster, Reason: reason, Peer: peer})
	return out
}

func (m *Machine) becomeBackup(now time.Duration, ev Event, reason string, out []Action) []Action {
	m.state = Backup
	m.adverTimer, m.garpTimer, m.refreshTimer = NoDeadline, NoDeadline, NoDeadline
	m.reann.Cancel()
	m.learn(now, ev)
	return append(out, Action{Kind: ActRemoveVIP}, Action{Kind: ActBecomeBackup, Reason: reason, Peer: ev.Src})
}

// learn: Set Master_Adver_Interval to the advert's, recompute, reset the
// Master_Down_Timer (§6.4.2 / §6.4.3).
func (m *Machine) learn(now time.Duration, ev Event) {
	if ev.Interval > 0 {
		m.masterAdverInterval = ev.Interval
	}
	m.masterDownTimer = now + m.MasterDownInterval()
	m.master = ev.Src
	m.masterPrio = ev.Priority
	m.resigned, m.silent = false, false
	m.heardAt = now
}

func (m *Machine) shutdown(out []Action) []Action {
	switch m.state {
	case Initialize:
		return out
	case Master:
		out = append(out, Action{Kind: ActSendAdvert, Priority: 0}, Action{Kind: ActRemoveVIP})
	}
	m.state = Initialize
	m.adverTimer, m.masterDownTimer, m.garpTimer, m.refreshTimer = NoDeadline, NoDeadline, NoDeadline, NoDeadline
	m.reann.Cancel()
	m.lowerSeen, m.resigned = false, false
	return append(out, Action{Kind: ActBecomeInit, Reason: ReasonShutdown})
}

// higher reports whether an advert (prio, src) beats this router (§6.4.3).
func (m *Machine) higher(prio uint8, src netip.Addr) (bool, string) {
	me := m.Priority()
	if prio > me {
		return true, ReasonHigher
	}
	if prio == me && src.Compare(m.cfg.Primary) > 0 {
		return true, ReasonEqualHigher
	}
	return false, ""
}

func (m *Machine) advert(now time.Duration, ev Event, out []Action) []Action {
	if ev.Src == m.cfg.Primary {
		return out // our own advert looped back
	}
	switch m.state {
	case Backup:
		at := m.arrival(now, ev)
		if ev.Priority == 0 {
			// §6.4.2: the master resigned; take over after Skew_Time.
			m.masterDownTimer = now + m.SkewTime()
			m.resigned = true
			return out
		}
		if !m.preempt() || ev.Priority >= m.Priority() {
			m.lowerSeen = false
			m.learn(at, ev)
			return out
		}
		// Preempt and the master has a lower priority: §6.4.2 discards the
		// advert so the Master_Down_Timer runs out. With a preempt delay, keep
		// accepting it until the delay has passed since the first one.
		if m.cfg.PreemptDelay > 0 {
			if !m.lowerSeen {
				m.lowerSeen, m.lowerSince = true, now
			}
			if until := m.lowerSince + m.cfg.PreemptDelay; now < until {
				m.learn(at, ev)
				m.masterDownTimer = min(m.masterDownTimer, until)
			}
		}
		return out
	case Master:
		if ev.Priority == 0 {
			// §6.4.3: another router resigned; assert ourselves at once.
			m.adverTimer = now + m.cfg.AdvertInterval
			return append(out, Action{Kind: ActSendAdvert, Priority: m.Priority()})
		}
		if ok, reason := m.higher(ev.Priority, ev.Src); ok {
			return m.becomeBackup(now, ev, reason, out)
		}
		// §6.4.3 discards a lower-priority advert; its sender believes it
		// is master and may have announced the addresses with its MAC.
		return m.reclaim(now, ReasonReclaimLower, true, out)
	}
	return out
}

// reclaim re-announces the virtual addresses with an advert (which makes the
// other router step down at once) and a gratuitous ARP burst, at most once
// per GARPLowerPrioInterval; a trigger inside the interval is counted and
// answered by one burst when it ends. advert false: the caller has just
// sent one.
func (m *Machine) reclaim(now time.Duration, reason string, advert bool, out []Action) []Action {
	if m.cfg.GARPLowerPrioCount <= 0 {
		return out
	}
	if !m.reann.Allow(now, m.cfg.GARPLowerPrioInterval, reason) {
		return out
	}
	if advert {
		m.adverTimer = now + m.cfg.AdvertInterval
		out = append(out, Action{Kind: ActSendAdvert, Priority: m.Priority()})
	}
	return append(out, Action{Kind: ActGARP, Count: m.cfg.GARPLowerPrioCount, Reason: reason})
}

func (m *Machine) timer(now time.Duration, out []Action) []Action {
	switch m.state {
	case Backup:
		if now >= m.masterDownTimer {
			reason := ReasonMasterDown
			if m.resigned {
				reason = ReasonResigned
			} else if m.silent {
				reason = ReasonSilent
			} else if m.lowerSeen {
				reason = ReasonPreempt
			}
			m.replaced = netip.Addr{}
			if m.silent {
				m.replaced = m.silentFrom
			}
			m.lowerSeen, m.resigned, m.silent = false, false, false
			return m.becomeMaster(now, reason, netip.Addr{}, out)
		}
	case Master:
		if reason, ok := m.reann.Due(now); ok { // sends the advert too
			out = m.reclaim(now, reason, true, out)
		}
		if now >= m.adverTimer {
			// The previous advert left one interval before adverTimer,
			// or later if its wake-up was late: this test sees every gap
			// of 3 intervals, the shortest Master_Down_Interval a backup
			// can compute from our adverts, after which it may have taken
			// over (we were stopped, starved of CPU, or descheduled).
			stalled := now-m.adverTimer >= 2*m.cfg.AdvertInterval
			m.adverTimer = role.NextPeriodic(m.adverTimer, now, m.cfg.AdvertInterval)
			out = append(out, Action{Kind: ActSendAdvert, Priority: m.Priority()})
			if stalled {
				out = m.reclaim(now, ReasonReclaimStall, false, out)
			}
		}
		if now >= m.garpTimer {
			m.garpTimer = NoDeadline
			out = append(out, Action{Kind: ActGARP, Count: m.cfg.GARPCount})
		}
		if now >= m.refreshTimer {
			m.refreshTimer = now + m.cfg.GARPRefresh
			out = append(out, Action{Kind: ActGARP, Count: m.cfg.GARPRefreshCount, Reason: ReasonRefresh})
		}
	}
	return out
}

func (m *Machine) priorityChanged(now time.Duration, old uint8, out []Action) []Action {
	if m.Priority() == old {
		return out
	}
	if m.state == Master {
		// Tell the backups now: a preempting backup with a higher priority
		// than our new one starts discarding our adverts at once.
		m.adverTimer = now + m.cfg.AdvertInterval
		out = append(out, Action{Kind: ActSendAdvert, Priority: m.Priority()})
	}
	return out
}
