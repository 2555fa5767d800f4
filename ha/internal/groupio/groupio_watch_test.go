//go:build linux

package groupio

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// lazyPair opens a plain sender on 127.0.0.1 and a lazy receiver on
// 127.0.0.2, one port.
func lazyPair(t *testing.T) (a, b *Conn) {
	t.Helper()
	port := freePort(t)
	open := func(local string, lazy bool) *Conn {
		c, err := Open(Options{Interface: "lo", Local: netip.MustParseAddr(local), Port: port, Lazy: lazy})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	return open("127.0.0.1", false), open("127.0.0.2", true)
}

// waitOnce runs w.Wait on a goroutine and returns its answer channel.
func waitOnce(w *Watcher) <-chan error {
	c := make(chan error, 1)
	go func() { c <- w.Wait() }()
	return c
}

func wantWait(t *testing.T, c <-chan error, want error, what string) {
	t.Helper()
	select {
	case err := <-c:
		if !errors.Is(err, want) && err != want {
			t.Fatalf("%s: Wait = %v, want %v", what, err, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: Wait did not return in 5 s", what)
	}
}

// A watcher wakes at an arrival and reads nothing: the datagram is still
// the lazy socket's to read, with its arrival time. One queued before the
// watcher existed wakes it at once (nothing is missed in the switch), and
// after Close arrivals are still queued for ReadQueued.
func TestWatchWakesAtArrivalReadsNothing(t *testing.T) {
	a, b := lazyPair(t)
	buf := make([]byte, 64)
	send := func(p string) {
		t.Helper()
		if err := a.SendTo([]byte(p), b.Local()); err != nil {
			t.Fatal(err)
		}
	}
	read := func(want string) {
		t.Helper()
		n, _, _, at, ok, err := b.ReadQueued(buf)
		if err != nil || !ok || string(buf[:n]) != want || at == 0 {
			t.Fatalf("ReadQueued = %q ok %v err %v at %d, want %q with its arrival time", buf[:n], ok, err, at, want)
		}
	}
	send("before") // queued before the watcher
	w, err := b.Watch()
	if err != nil {
		t.Fatal(err)
	}
	wantWait(t, waitOnce(w), nil, "datagram queued before Watch")
	wantWait(t, waitOnce(w), nil, "same datagram, still unread")
	read("before")
	if _, _, _, _, ok, _ := b.ReadQueued(buf); ok {
		t.Fatal("a second datagram: the watcher read or duplicated something")
	}

	c := waitOnce(w)
	select {
	case err := <-c:
		t.Fatalf("Wait returned %v with nothing queued", err)
	case <-time.After(50 * time.Millisecond):
	}
	send("arrival")
	wantWait(t, c, nil, "arrival")
	read("arrival")

	c = waitOnce(w)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wantWait(t, c, ErrClosed, "Close during Wait")
	send("after")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		n, _, _, _, ok, err := b.ReadQueued(buf)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if string(buf[:n]) != "after" {
				t.Fatalf("read %q after Close, want \"after\"", buf[:n])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("datagram sent after the watcher's Close not queued on the lazy socket")
		}
	}
	if _, err := a.Watch(); err == nil {
		t.Fatal("Watch on a socket opened without Lazy: no error")
	}
}
