package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/hagent/hagent/ha/internal/console"
)

func newTab(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// printBindings: a summary line, the live bindings, then the tombstones in
// a table of their own (they have no care-of address and are purged, not
// expired). The first nine live columns keep their order for scripts.
func printBindings(w io.Writer, b *console.Bindings) {
	fmt.Fprintf(w, "bindings: %d live of %d (ipip %d, gre %d, udp %d, reverse-tunnelled %d), %d tombstones of %d\n",
		b.Live, b.Capacity, b.IPIP, b.GRE, b.UDP, b.Reverse, b.Tombs, b.TombCap)
	var live, tombs []console.Binding
	for _, x := range b.Rows {
		if x.State == "tombstone" {
			tombs = append(tombs, x)
		} else {
			live = append(live, x)
		}
	}
	if len(live) > 0 {
		tw := newTab(w)
		nat, nets := false, false
		for _, x := range live {
			nat = nat || x.NAT != ""
			nets = nets || len(x.Networks) > 0
		}
		// NAT and NETWORKS are columns only when some binding has one: a Home
		// Agent without NAT'd nodes or mobile routers shows what it always did.
		head := "HOME\tCARE-OF\tHOME-AGENT\tSTATE\tGRANTED\tREMAINING\tFLAGS\tIDENTIFICATION\tNODE\tTUNNEL\tAGE\tSOURCE\tNAI\tORIGIN"
		if nat {
			head += "\tNAT"
		}
		if nets {
			head += "\tNETWORKS"
		}
		fmt.Fprintln(tw, head)
		for _, x := range live {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%ds\t%ds\t%s\t%#016x\t%s\t%s\t%ds\t%s\t%s\t%d",
				x.Home, dash(x.CareOf), dash(x.HomeAgent), x.State, x.Granted, x.Remaining, dash(x.Flags), x.ID,
				dash(x.Node), dash(x.Tunnel), x.Age, dash(x.Source), dash(x.NAI), x.Origin)
			if nat {
				fmt.Fprintf(tw, "\t%s", dash(x.NAT))
			}
			if nets {
				fmt.Fprintf(tw, "\t%s", dash(strings.Join(x.Networks, ",")))
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
	if len(tombs) > 0 {
		fmt.Fprintln(w, "\ntombstones (de-registered; kept so that the group cannot bring them back):")
		tw := newTab(w)
		fmt.Fprintln(tw, "HOME\tSTATE\tPURGED-IN\tIDENTIFICATION\tNODE\tAGE\tSOURCE\tORIGIN")
		for _, x := range tombs {
			fmt.Fprintf(tw, "%s\t%s\t%ds\t%#016x\t%s\t%ds\t%s\t%d\n",
				x.Home, x.State, x.Remaining, x.ID, dash(x.Node), x.Age, dash(x.Source), x.Origin)
		}
		tw.Flush()
	}
	if b.Truncated > 0 {
		fmt.Fprintf(w, "(%d more not shown; use -limit -1 for all)\n", b.Truncated)
	}
}

// printBindingDetail is `show bindings ADDR`, laid out like IOS `show ip
// mobile binding ADDR`: one block per binding, one fact per line.
func printBindingDetail(w io.Writer, b *console.Bindings) {
	if len(b.Rows) == 0 {
		fmt.Fprintln(w, "no binding for that home address")
		return
	}
	for i, x := range b.Rows {
		if i > 0 {
			fmt.Fprintln(w)
		}
		name := ""
		if x.Node != "" {
			name = " (" + x.Node + ")"
		}
		fmt.Fprintf(w, "Mobility binding %s%s: %s\n", x.Home, name, x.State)
		tw := newTab(w)
		if x.State == "tombstone" {
			fmt.Fprintf(tw, "  De-registered\t%ds ago\n", x.Age)
			fmt.Fprintf(tw, "  Purged in\t%ds\n", x.Remaining)
		} else {
			fmt.Fprintf(tw, "  Care-of address\t%s\n", x.CareOf)
			fmt.Fprintf(tw, "  Home agent address\t%s\n", x.HomeAgent)
			fmt.Fprintf(tw, "  Lifetime\tgranted %ds, remaining %ds, registered %ds ago\n", x.Granted, x.Remaining, x.Age)
			tun := x.Tunnel
			if x.NAT != "" {
				tun += " to NAT mapping " + x.NAT
			}
			if strings.Contains(" "+x.Flags+" ", " T ") {
				tun += ", reverse tunnel"
			}
			fmt.Fprintf(tw, "  Tunnel\t%s\n", tun)
			if len(x.Networks) > 0 {
				fmt.Fprintf(tw, "  Mobile networks\t%s\n", strings.Join(x.Networks, ", "))
			}
		}
		fmt.Fprintf(tw, "  NAI\t%s\n", dash(x.NAI))
		fmt.Fprintf(tw, "  Request source\t%s\n", dash(x.Source))
		fmt.Fprintf(tw, "  Flags\t%s\n", dash(x.Flags))
		fmt.Fprintf(tw, "  Identification\t%#016x\n", x.ID)
		fmt.Fprintf(tw, "  Accepted by\tagent %d\n", x.Origin)
		tw.Flush()
	}
}

// printRedundancy: the member's role, the election (as IOS `show vrrp`),
// the replication policy and the peer table (as `show ip mobile
// redundancy`), then the counters grouped.
func printRedundancy(w io.Writer, x *console.Redundancy) {
	tw := newTab(w)
	role := x.Role
	if e := x.Election; e != nil && e.State != "" {
		role += " (" + e.Protocol + " " + e.State + ")"
	}
	fmt.Fprintf(tw, "mode\t%s\nrole\t%s\nreason\t%s\n", x.Mode, role, dash(x.Reason))
	if x.Since != "" {
		fmt.Fprintf(tw, "since\t%s\n", x.Since)
	}
	fmt.Fprintf(tw, "serving\t%s\nsynced\t%s\n", yesNo(x.Serving), yesNo(x.Synced))
	tw.Flush()
	if e := x.Election; e != nil {
		printElection(w, e)
	}
	printReplication(w, x)
	tw = newTab(w)
	for _, g := range x.Counters {
		section(tw, g.Name, g.Counters)
	}
	tw.Flush()
}

// printElection prints the VRRP or HSRP group this agent takes part in.
func printElection(w io.Writer, e *console.Election) {
	fmt.Fprintf(w, "\n%s group %d on %s\n", strings.ToUpper(e.Protocol), e.Group, e.Interface)
	tw := newTab(w)
	fmt.Fprintf(tw, "  state\t%s\n", dash(e.State))
	fmt.Fprintf(tw, "  virtual address\t%s\n", e.VirtualAddress)
	own := ""
	if e.VirtualMACOwn {
		own = " (the interface's own)"
	}
	fmt.Fprintf(tw, "  virtual MAC\t%s%s\n", dash(e.VirtualMAC), own)
	fmt.Fprintf(tw, "  priority\t%d (configured %d)\n", e.Priority, e.ConfiguredPriority)
	master := dash(e.Master)
	if e.MasterLocal {
		master += " (local)"
	}
	if e.MasterPriority != 0 {
		master += fmt.Sprintf(", priority %d", e.MasterPriority)
	}
	fmt.Fprintf(tw, "  master\t%s\n", master)
	if e.AdvertInterval != "" {
		fmt.Fprintf(tw, "  timers\tadvertisement %s, master down %s\n", e.AdvertInterval, e.MasterDownInterval)
	} else {
		fmt.Fprintf(tw, "  timers\thello %s, hold %s\n", e.Hello, e.Hold)
	}
	pre := "disabled"
	if e.Preempt {
		pre = "enabled"
		if e.PreemptDelay != "" {
			pre += ", delay " + e.PreemptDelay
		}
	}
	fmt.Fprintf(tw, "  preemption\t%s\n", pre)
	if len(e.Tracked) == 0 {
		fmt.Fprintf(tw, "  tracked interfaces\tnone\n")
	}
	for i, t := range e.Tracked {
		label := ""
		if i == 0 {
			label = "tracked interfaces"
		}
		st := "up"
		if !t.Up {
			st = "down"
		}
		w := fmt.Sprintf("weight %d", t.Weight)
		if t.Weight == 0 {
			w = "resigns when down"
		}
		fmt.Fprintf(tw, "  %s\t%s %s, %s\n", label, t.Interface, st, w)
	}
	tw.Flush()
}

// printReplication prints the group protocol's members and the sources of
// group datagrams that failed authentication.
func printReplication(w io.Writer, x *console.Redundancy) {
	var tw *tabwriter.Writer
	if p := x.Replication; p != nil {
		fmt.Fprintf(w, "\nreplication: ack before reply %s, require replication %s, send key id %d; peers up %d, acknowledging %d\n",
			yesNo(p.AckBeforeReply), yesNo(p.RequireReplication), p.SendKeyID, p.PeersUp, p.PeersAcking)
		if p.Heartbeat != "" {
			fmt.Fprintf(w, "heartbeat: %s\n", p.Heartbeat)
		}
		if len(x.Peers) == 0 {
			fmt.Fprintln(w, "no peers heard")
		} else {
			// ACKING: whether this peer's silence counts (a held reply
			// becomes 130); TABLES-EQUAL: the last digest exchange found
			// the same table; BINDINGS: live ones it accepted, in our table;
			// PROVEN: its session answered our challenge (until then
			// nothing it sends is applied).
			tw = newTab(w)
			fmt.Fprintln(tw, "ADDRESS\tAGENT-ID\tSTATE\tLAST-HEARD\tPROVEN\tACKING\tTABLES-EQUAL\tBINDINGS\tPENDING\tAUTH-FAILURES")
			for _, p := range x.Peers {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", p.Address, p.ID, p.State, p.LastHeard,
					yesNo(p.Proven), yesNo(p.Acking), yesNo(p.TablesEqual), p.Bindings, p.Pending, p.AuthFailures)
			}
			tw.Flush()
		}
	}
	if len(x.AuthFailures) > 0 {
		// A member with another group key cannot follow the group: it
		// shows here, not as a peer.
		fmt.Fprintln(w, "\ngroup datagrams failing authentication (another group key?)")
		tw = newTab(w)
		fmt.Fprintln(tw, "SOURCE\tCLAIMED-AGENT-ID\tFAILURES\tLAST")
		for _, s := range x.AuthFailures {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", s.Address, s.ClaimedID, s.Failures, s.LastSeen)
		}
		tw.Flush()
	}
}

// printViolations is IOS `show ip mobile violation`: newest first.
func printViolations(w io.Writer, v *console.Violations) {
	fmt.Fprintf(w, "authentication failures: %d since start; the last %d kept\n", v.Total, v.Capacity)
	if len(v.Rows) == 0 {
		return
	}
	tw := newTab(w)
	fmt.Fprintln(tw, "TIME (UTC)\tSOURCE\tHOME\tSPI\tNAI\tREASON")
	for _, x := range v.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", x.Time, x.Source, x.Home, x.SPI, dash(x.NAI), x.Reason)
	}
	tw.Flush()
}
