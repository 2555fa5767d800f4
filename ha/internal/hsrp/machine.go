package hsrp

import (
	"errors"
	"math"
	"net/netip"
	"time"

	"github.com/hagent/hagent/ha/internal/role"
)

// NoDeadline is returned when no timer runs.
const NoDeadline = time.Duration(math.MaxInt64)

// Defaults recommended by RFC 2281 §5.1.
const (
	DefaultHellotime = 3 * time.Second
	DefaultHoldtime  = 10 * time.Second
)

// Config is one standby group as this router runs it.
type Config struct {
	Group    uint8
	Priority uint8
	Preempt  bool
	Auth     [8]byte
	// VIP may be left invalid: it is then learned from the active router
	// (the router stays in Learn until then).
	VIP netip.Addr
	// Hellotime/Holdtime in whole seconds on the wire; 0 = learn from the
	// active router, 3 s / 10 s until then (§5.1).
	Hellotime, Holdtime time.Duration
	Primary             netip.Addr // own interface address: ties break on it
	GARPCount           int
	// UseVirtualMAC: the active router answers for the address with the
	// virtual MAC 0000.0c07.acXX (§6.1; the runner's macvlan); false: with
	// the interface's own MAC (Cisco's "standby use-bia").
	UseVirtualMAC bool
	// GARPLowerPrioCount gratuitous ARPs for the virtual address when the
	// active router learns that another router may have claimed it: a
	// hello from a lower-priority active router (answered with a Coup,
	// event h), or its own hellos late by a holdtime (a standby may have
	// taken over meanwhile). The other router resigns silently, so without
	// this the hosts keep the address on its MAC. 0 = never.
	// GARPLowerPrioInterval is the least time between two such bursts; a
	// trigger inside it is counted and folded into one burst at its end.
	GARPLowerPrioCount    int
	GARPLowerPrioInterval time.Duration
	// GARPRefresh, if > 0: the active router re-announces every
	// GARPRefresh, GARPRefreshCount times.
	GARPRefresh      time.Duration
	GARPRefreshCount int
}

// Validate checks ranges.
func (c *Config) Validate() error {
	switch {
	case !c.Primary.Is4():
		return errors.New("hsrp: primary address must be IPv4")
	case c.VIP.IsValid() && !c.VIP.Is4():
		return errors.New("hsrp: virtual address must be IPv4")
	case (c.Hellotime == 0) != (c.Holdtime == 0):
		return errors.New("hsrp: configure both hellotime and holdtime, or neither (RFC 2281: never one configured and one learned)")
	case c.Hellotime != 0 && (c.Hellotime < time.Second || c.Holdtime <= c.Hellotime || c.Holdtime > 255*time.Second):
		return errors.New("hsrp: need 1s <= hellotime < holdtime <= 255s")
	case c.GARPCount < 0:
		return errors.New("hsrp: garp count must be >= 0")
	case c.GARPLowerPrioCount < 0 || c.GARPRefreshCount < 0:
		return errors.New("hsrp: garp lower-priority and refresh counts must be >= 0")
	case c.GARPLowerPrioCount > 0 && c.GARPLowerPrioInterval <= 0:
		return errors.New("hsrp: garp lower-priority interval must be > 0 (it rate-limits the bursts)")
	case c.GARPRefresh < 0:
		return errors.New("hsrp: garp refresh must be >= 0")
	}
	return nil
}

// EventKind says what happened.
type EventKind uint8

const (
	EvEnable   EventKind = iota + 1 // event a: configured on an enabled interface
	EvDisable                       // event b: disabled (resigns if active)
	EvTimer                         // events c, d, e: now reached the deadline
	EvMessage                       // a received message (Receive returned nil)
	EvPriority                      // tracking: Priority
	EvHold                          // Hold: not yet initialized from the group
	EvSilent                        // the group heartbeat of Src stopped (silent.go)
	EvAlive                         // Src, reported silent, spoke again (silent.go)
)

// Event is one input. For EvMessage: Src and Msg.
type Event struct {
	Kind     EventKind
	Src      netip.Addr
	Msg      Message
	Priority uint8
	Hold     bool
	// EvSilent: how long Src has been silent, and the heartbeat interval.
	Silent, Interval time.Duration
}

// ActionKind is what the runner must do.
type ActionKind uint8

const (
	// The message actions carry the State to put in the message: the state
	// the router was in when it decided (a Resign leaves Active first).
	ActHello  ActionKind = iota + 1 // F: send Hello
	ActCoup                         // G: send Coup
	ActResign                       // H: send Resign
	ActGARP                         // I: gratuitous ARP for the virtual address (Count)
	ActAddVIP
	ActRemoveVIP
	ActState // the state changed (State, Reason)
)

// Action is one output, executed in order. For ActGARP, Reason says why
// when it is not the takeover's announcement.
type Action struct {
	Kind   ActionKind
	State  State
	Count  int
	Reason string
	Peer   netip.Addr
}

// Reasons.
const (
	ReasonEnabled      = "enabled"
	ReasonLearned      = "learned the virtual address from the active router"
	ReasonActiveDown   = "active timer expired (no hello from the active router)"
	ReasonStandbyDown  = "standby timer expired (no standby router)"
	ReasonNoActive     = "no active and no standby router"
	ReasonHigherSpeak  = "hello from a higher-priority speaker"
	ReasonHigherStdby  = "hello from a higher-priority standby router"
	ReasonLowerStdby   = "hello from a lower-priority standby router"
	ReasonHigherActive = "hello from a higher-priority active router"
	ReasonResign       = "active router resigned"
	ReasonCoup         = "coup from a higher-priority router"
	ReasonPreempt      = "preempted a lower-priority active router"
	ReasonDisabled     = "disabled"

	// Reasons of an ActGARP outside the takeover.
	ReasonReclaimLower = "hello from a lower-priority active router: re-announcing the virtual address"
	ReasonReclaimStall = "own hellos were late by a holdtime: re-announcing the virtual address"
	ReasonRefresh      = "periodic refresh"
)

// Machine is the RFC 2281 §5 state machine of one group.
type Machine struct {
	cfg                                  Config
	state                                State
	prio                                 uint8
	held                                 bool
	vip                                  netip.Addr
	hello, hold                          time.Duration
	activeTimer, standbyTimer, helloTime time.Duration
	active, standby                      netip.Addr

	refreshTimer time.Duration   // Active: next periodic announcement
	reann        role.Reannounce // Active: re-announcements, rate-limited
	activePrio   uint8           // the active router's priority as last heard
	heardAt      time.Duration   // when the active router's hello last started the active timer
	silent       bool            // the active timer was cut short by EvSilent
	// Active after EvSilent: the active router it replaced (else invalid).
	replaced, silentFrom netip.Addr
}

// New returns a machine in Initial. cfg must have passed Validate.
func New(cfg Config) *Machine {
	m := &Machine{cfg: cfg, prio: cfg.Priority, vip: cfg.VIP, hello: cfg.Hellotime, hold: cfg.Holdtime,
		activeTimer: NoDeadline, standbyTimer: NoDeadline, helloTime: NoDeadline, refreshTimer: NoDeadline}
	if m.hello == 0 {
		m.hello, m.hold = DefaultHellotime, DefaultHoldtime
	}
	return m
}

// State is the current state.
func (m *Machine) State() State { return m.state }

// Suppressed counts the re-announcement triggers that came inside the rate
// limit's interval and were folded into a later burst.
func (m *Machine) Suppressed() uint64 { return m.reann.Suppressed() }

// VIP is the configured or learned virtual address.
func (m *Machine) VIP() netip.Addr { return m.vip }

// Held reports the hold input.
func (m *Machine) Held() bool { return m.held }

// Active is the active router as last heard (ours when Active) and its
// priority (0 before any hello from it).
func (m *Machine) Active() (netip.Addr, uint8) {
	if m.state == Active {
		return m.cfg.Primary, m.Priority()
	}
	return m.active, m.activePrio
}

// Timers in use (configured or learned).
func (m *Machine) Timers() (hello, hold time.Duration) { return m.hello, m.hold }

// Priority in use: 1 while held (same rule as VRRP: the least preferred
// member, never preempting; see docs/redundancy.md).
func (m *Machine) Priority() uint8 {
	if m.held {
		return 1
	}
	return m.prio
}

func (m *Machine) preempt() bool { return m.cfg.Preempt && !m.held }

// higher: priority, then the higher IP address (§5.1 Priority).
func (m *Machine) higher(prio uint8, src netip.Addr) bool {
	me := m.Priority()
	return prio > me || prio == me && src.Compare(m.cfg.Primary) > 0
}

// Message fills a message of the given op code as this router sends it.
func (m *Machine) Message(op uint8) Message {
	return Message{OpCode: op, State: m.state, Hellotime: secs(m.hello), Holdtime: secs(m.hold),
		Priority: m.Priority(), Group: m.cfg.Group, Auth: m.cfg.Auth, VIP: m.vip}
}

func secs(d time.Duration) uint8 {
	s := (d + time.Second - 1) / time.Second
	return uint8(min(max(s, 1), 255))
}

func (m *Machine) deadline() time.Duration {
	d := min(m.activeTimer, m.standbyTimer, m.helloTime, m.refreshTimer)
	if at, ok := m.reann.Deadline(); ok {
		d = min(d, at)
	}
	return d
}

// Handle applies one event at monotonic now and returns the actions appended
// to out and the next deadline.
func (m *Machine) Handle(now time.Duration, ev Event, out []Action) ([]Action, time.Duration) {
	switch ev.Kind {
	case EvEnable:
		if m.state == Initial { // a
			m.activeTimer, m.standbyTimer = now+m.hold, now+m.hold // A B
			next := Listen
			if !m.vip.IsValid() {
				next = Learn
			}
			out = m.to(next, ReasonEnabled, netip.Addr{}, out)
		}
	case EvDisable: // b
		out = m.disable(out)
	case EvTimer:
		out = m.timers(now, out)
	case EvMessage:
		out = m.message(now, ev.Src, &ev.Msg, out)
	case EvSilent:
		out = m.peerSilent(now, ev, out)
	case EvAlive:
		out = m.peerAlive(now, ev, out)
	case EvPriority, EvHold:
		old := m.Priority()
		if ev.Kind == EvPriority {
			m.prio = ev.Priority
		} else {
			m.held = ev.Hold
		}
		if m.Priority() != old && m.speaking() {
			out = m.sendHello(now, out) // tell the group at once
		}
	}
	return out, m.deadline()
}

func (m *Machine) speaking() bool { return m.state == Speak || m.state == Standby || m.state == Active }

func (m *Machine) to(s State, reason string, peer netip.Addr, out []Action) []Action {
	if m.state == Active && s != Active {
		out = append(out, Action{Kind: ActRemoveVIP})
		m.refreshTimer = NoDeadline
		m.reann.Cancel()
	}
	m.state = s
	if !m.speaking() {
		m.helloTime = NoDeadline
	}
	return append(out, Action{Kind: ActState, State: s, Reason: reason, Peer: peer})
}

func (m *Machine) sendHello(now time.Duration, out []Action) []Action { // F J
	m.helloTime = now + m.hello
	return append(out, Action{Kind: ActHello, State: m.state})
}

func (m *Machine) becomeActive(now time.Duration, reason string, peer netip.Addr, out []Action) []Action {
	m.activeTimer, m.standbyTimer = NoDeadline, NoDeadline // C D
	m.active = m.cfg.Primary
	out = append(out, Action{Kind: ActAddVIP})
	out = m.to(Active, reason, peer, out)
	out = m.sendHello(now, out) // F J
	if m.cfg.GARPRefresh > 0 && m.cfg.GARPRefreshCount > 0 {
		m.refreshTimer = now + m.cfg.GARPRefresh
	}
	// The takeover's announcement counts as the last re-announcement.
	m.reann.Sent(now, m.cfg.GARPLowerPrioInterval)
	return append(out, Action{Kind: ActGARP, Count: m.cfg.GARPCount}) // I
}

// reclaim announces the virtual address again (see
// Config.GARPLowerPrioCount), at most once per GARPLowerPrioInterval.
func (m *Machine) reclaim(now time.Duration, reason string, out []Action) []Action {
	if m.cfg.GARPLowerPrioCount <= 0 {
		return out
	}
	if !m.reann.Allow(now, m.cfg.GARPLowerPrioInterval, reason) {
		return out
	}
	return append(out, Action{Kind: ActGARP, Count: m.cfg.GARPLowerPrioCount, Reason: reason})
}

func (m *Machine) disable(out []Action) []Action {
	if m.state == Initial {
		return out
	}
	if m.state == Active {
		out = append(out, Action{Kind: ActResign, State: Active}) // H
	}
	m.activeTimer, m.standbyTimer = NoDeadline, NoDeadline // C D
	return m.to(Initial, ReasonDisabled, netip.Addr{}, out)
}

func (m *Machine) timers(now time.Duration, out []Action) []Action {
	if now >= m.activeTimer { // c
		m.activeTimer = NoDeadline
		m.active = netip.Addr{}
		switch m.state {
		case Listen:
			m.standbyTimer = now + m.hold // B: compete for standby
			out = m.to(Speak, ReasonActiveDown, netip.Addr{}, out)
			out = m.sendHello(now, out)
		case Standby:
			reason := ReasonActiveDown
			m.replaced = netip.Addr{}
			if m.silent {
				reason, m.replaced = ReasonSilent, m.silentFrom
			}
			out = m.becomeActive(now, reason, netip.Addr{}, out)
		}
		m.silent = false
	}
	if now >= m.standbyTimer { // d
		m.standbyTimer = NoDeadline
		m.standby = netip.Addr{}
		switch m.state {
		case Listen:
			m.standbyTimer = now + m.hold
			out = m.to(Speak, ReasonStandbyDown, netip.Addr{}, out)
			out = m.sendHello(now, out)
		case Speak:
			if m.activeTimer == NoDeadline {
				// Nobody is active and nobody outranked us for standby:
				// standby and at once active.
				out = m.becomeActive(now, ReasonNoActive, netip.Addr{}, out)
			} else {
				m.standby = m.cfg.Primary
				out = m.to(Standby, ReasonStandbyDown, netip.Addr{}, out)
				out = m.sendHello(now, out)
			}
		}
	}
	if now >= m.helloTime && m.speaking() { // e
		// The previous hello left one hellotime before helloTime, or
		// later if its wake-up was late: this test sees every silence of
		// a holdtime, after which a standby may have taken over.
		stalled := m.state == Active && now-m.helloTime >= m.hold-m.hello
		prev := m.helloTime
		out = m.sendHello(now, out)
		m.helloTime = role.NextPeriodic(prev, now, m.hello)
		if stalled {
			out = m.reclaim(now, ReasonReclaimStall, out)
		}
	}
	if reason, ok := m.reann.Due(now); ok && m.state == Active {
		out = m.reclaim(now, reason, out)
	}
	if m.state == Active && now >= m.refreshTimer {
		m.refreshTimer = now + m.cfg.GARPRefresh
		out = append(out, Action{Kind: ActGARP, Count: m.cfg.GARPRefreshCount, Reason: ReasonRefresh})
	}
	return out
}

// learn is action E: the virtual address and the timers from the active
// router, if not configured (§5.1).
func (m *Machine) learn(msg *Message) {
	if !m.cfg.VIP.IsValid() && msg.VIP.IsValid() {
		m.vip = msg.VIP
	}
	if m.cfg.Hellotime == 0 && m.state != Active && msg.Hellotime > 0 && msg.Holdtime > msg.Hellotime {
		m.hello = time.Duration(msg.Hellotime) * time.Second
		m.hold = time.Duration(msg.Holdtime) * time.Second
	}
}

func (m *Machine) startActive(now time.Duration, msg *Message) { // A, from the active's hello
	m.activePrio = msg.Priority
	m.activeTimer = now + time.Duration(max(msg.Holdtime, 1))*time.Second
	m.heardAt, m.silent = now, false
}

func (m *Machine) startStandby(now time.Duration, msg *Message) { // B, from the standby's hello
	m.standbyTimer = now + time.Duration(max(msg.Holdtime, 1))*time.Second
}

func (m *Machine) message(now time.Duration, src netip.Addr, msg *Message, out []Action) []Action {
	if src == m.cfg.Primary || m.state == Initial {
		return out
	}
	higher := m.higher(msg.Priority, src)
	switch {
	case msg.OpCode == OpResign && (msg.State == Active || src == m.active): // i
		return m.onResign(now, src, msg, higher, out)
	case msg.OpCode == OpCoup: // j
		return m.onCoup(now, src, msg, higher, out)
	case msg.OpCode == OpHello && msg.State == Active:
		return m.onActiveHello(now, src, msg, higher, out)
	case msg.OpCode == OpHello && msg.State == Speak: // f
		return m.onSpeakHello(now, src, msg, higher, out)
	case msg.OpCode == OpHello && msg.State == Standby:
		return m.onStandbyHello(now, src, msg, higher, out)
	}
	return out
}

// onResign: event i, the active router resigns.
func (m *Machine) onResign(now time.Duration, src netip.Addr, msg *Message, higher bool, out []Action) []Action {
	if src != m.active && m.active.IsValid() {
		return out
	}
	m.activeTimer, m.active = NoDeadline, netip.Addr{} // C
	switch m.state {
	case Standby, Speak:
		// Speak: we are the best candidate heard (a higher speaker or
		// standby sends us to Listen, a lower standby makes us
		// Standby), so nobody else would take over before our standby
		// timer ran out, and nobody would answer for the address.
		return m.becomeActive(now, ReasonResign, src, out)
	case Listen:
		m.standbyTimer = now + m.hold
		out = m.to(Speak, ReasonResign, src, out)
		return m.sendHello(now, out)
	}
	return out
}

// onCoup: event j, a Coup.
func (m *Machine) onCoup(now time.Duration, src netip.Addr, msg *Message, higher bool, out []Action) []Action {
	if !higher {
		return out
	}
	if m.state == Active {
		out = append(out, Action{Kind: ActResign, State: Active}) // H
		m.startActive(now, msg)                                   // A
		m.standbyTimer = now + m.hold                             // B
		m.active = src
		out = m.to(Speak, ReasonCoup, src, out)
		return m.sendHello(now, out)
	}
	m.startActive(now, msg)
	m.active = src
	return out
}

// onActiveHello: events g and h, a Hello from an active router.
func (m *Machine) onActiveHello(now time.Duration, src netip.Addr, msg *Message, higher bool, out []Action) []Action {
	if higher { // g
		m.learn(msg)
		m.startActive(now, msg) // A E
		m.active = src
		switch m.state {
		case Learn:
			if m.vip.IsValid() {
				return m.to(Listen, ReasonLearned, src, out)
			}
		case Active:
			m.standbyTimer = now + m.hold // B
			out = m.to(Speak, ReasonHigherActive, src, out)
			return m.sendHello(now, out)
		}
		return out
	}
	// h: a lower-priority active router. It may have announced the
	// address with its own MAC: the Coup makes it resign, silently.
	if m.state == Active {
		out = append(out, Action{Kind: ActCoup, State: Active}) // G
		return m.reclaim(now, ReasonReclaimLower, out)
	}
	m.learn(msg)
	m.startActive(now, msg)
	m.active = src
	if m.state == Learn {
		if m.vip.IsValid() {
			out = m.to(Listen, ReasonLearned, src, out)
		}
		return out
	}
	if m.preempt() && m.vip.IsValid() {
		out = append(out, Action{Kind: ActCoup, State: m.state}) // G
		return m.becomeActive(now, ReasonPreempt, src, out)
	}
	return out
}

// onSpeakHello: event f, a Hello from a speaking router.
func (m *Machine) onSpeakHello(now time.Duration, src netip.Addr, msg *Message, higher bool, out []Action) []Action {
	if !higher {
		return out
	}
	if m.state == Speak || m.state == Standby {
		m.standbyTimer = now + m.hold
		return m.to(Listen, ReasonHigherSpeak, src, out)
	}
	return out
}

// onStandbyHello: events k and l, a Hello from a standby router.
func (m *Machine) onStandbyHello(now time.Duration, src netip.Addr, msg *Message, higher bool, out []Action) []Action {
	if higher { // k
		m.startStandby(now, msg)
		m.standby = src
		if m.state == Speak || m.state == Standby {
			return m.to(Listen, ReasonHigherStdby, src, out)
		}
		return out
	}
	// l: a lower-priority standby router: we should be standby.
	if m.state == Speak { // D/Standby
		m.standbyTimer = NoDeadline
		m.standby = m.cfg.Primary
		return m.to(Standby, ReasonLowerStdby, src, out)
	}
	if m.state == Listen {
		m.standbyTimer = now + m.hold
		out = m.to(Speak, ReasonLowerStdby, src, out)
		return m.sendHello(now, out)
	}
	if m.state == Active {
		m.startStandby(now, msg)
		m.standby = src
	}
	return out
}
