package datapath

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Link notifications (RTM_NEWLINK/RTM_DELLINK).

// LinkWatcher delivers link notifications without programming anything:
// VRRP interface tracking needs them also when [datapath] is disabled.
type LinkWatcher struct{ k *kernel }

// WatchLinks subscribes to RTM_NEWLINK/RTM_DELLINK of the caller's network
// namespace.
func WatchLinks(log *slog.Logger) (*LinkWatcher, error) {
	lc, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{Groups: unix.RTMGRP_LINK})
	if err != nil {
		return nil, fmt.Errorf("datapath: rtnetlink link notifications: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	k := &kernel{log: log, links: make(chan LinkEvent, 64), lconn: lc, ldone: make(chan struct{})}
	go k.watchLinks()
	return &LinkWatcher{k: k}, nil
}

// Links is closed by Close; a zero LinkEvent means notifications were lost.
func (w *LinkWatcher) Links() <-chan LinkEvent { return w.k.links }

// Close ends the subscription.
func (w *LinkWatcher) Close() error {
	w.k.lclosed.Store(true)
	err := w.k.lconn.Close()
	<-w.k.ldone
	return err
}

func (k *kernel) watchLinks() {
	defer close(k.ldone)
	defer close(k.links)
	for {
		msgs, err := k.lconn.Receive()
		if err != nil {
			if k.lclosed.Load() || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return
			}
			if errors.Is(err, unix.ENOBUFS) {
				// Missed notifications: the role logic should re-check
				// links; tell it with a synthetic event for index 0.
				k.emit(LinkEvent{})
				continue
			}
			k.log.Warn("link notifications stopped", "err", err)
			return
		}
		for _, m := range msgs {
			if m.Header.Type != unix.RTM_NEWLINK && m.Header.Type != unix.RTM_DELLINK {
				continue
			}
			l, err := parseLink(m.Data)
			if err != nil {
				continue
			}
			k.emit(LinkEvent{Index: int(l.Index), Name: l.Name, Up: l.Flags&unix.IFF_UP != 0,
				Carrier: l.Flags&unix.IFF_LOWER_UP != 0, Deleted: m.Header.Type == unix.RTM_DELLINK})
		}
	}
}

func (k *kernel) emit(e LinkEvent) {
	k.linkEv.Add(1)
	select {
	case k.links <- e:
	default:
		k.linkDrp.Add(1)
	}
}
