// Command pacing compares what a periodic advert costs an idle process,
// paced by a timerfd (a wake-up per advert) or by the kernel (io_uring, a
// wake-up per batch): see package pacing. As root:
//
//	pacing -modes timer,uring10,uring3 -interval 100ms -span 30s
//	pacing -modes timer,uring10 -strace 10s
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/hagent/hagent/ha/internal/kpace/pacing"
)

func main() {
	fs := flag.NewFlagSet("pacing", flag.ExitOnError)
	modes := fs.String("modes", "timer,uring10,uring3", "comma-separated: timer, inline, uringN (N sends per chain)")
	interval := fs.Duration("interval", 100*time.Millisecond, "advert interval")
	settle := fs.Duration("settle", 3*time.Second, "time before measuring")
	span := fs.Duration("span", 30*time.Second, "measured span")
	st := fs.Duration("strace", 0, "count system calls with strace -f -c over this span instead of measuring CPU")
	child := fs.String("child", "", "internal: run as the sender (a mode) or the receiver (recv)")
	_ = fs.Parse(os.Args[1:])
	if *child != "" {
		if err := pacing.Child(*child, *interval, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "pacing:", err)
			os.Exit(1)
		}
		return
	}
	var ms []pacing.Mode
	for _, s := range strings.Split(*modes, ",") {
		m, err := pacing.ParseMode(s)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ms = append(ms, m)
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pacing:", err)
		os.Exit(1)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	load0, _ := os.ReadFile("/proc/loadavg")
	rs := pacing.Measure(ctx, self, ms, *interval, *settle, *span, *st)
	load1, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("%s, %v adverts, %v span; load %s → %s\n", time.Now().UTC().Format("15:04:05"), *interval, *span, strings.Fields(string(load0))[0], strings.Fields(string(load1))[0])
	pacing.Table(os.Stdout, rs)
}
