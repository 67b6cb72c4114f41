package bpf

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// waitEvent reads ch until an event matches; other events are skipped.
func waitEvent(t *testing.T, ch <-chan Event, what string, match func(Event) bool) Event {
	t.Helper()
	timeout := time.After(hangBound)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("no event %s: the channel was closed", what)
			}
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no event %s", what)
		}
	}
}

// queued takes what is queued on ch without waiting.
func queued(ch <-chan Event) []Event {
	var evs []Event
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return evs
			}
			evs = append(evs, ev)
		default:
			return evs
		}
	}
}

// TestEventRouting: each jail's events arrive on its own channel, those of a
// cgroup below a jail (no jail of its own) on the loader's, and Sync
// guarantees delivery; Jail.Close closes the channel only after the jail's
// last records, which are still delivered.
func TestEventRouting(t *testing.T) {
	requireKernel(t)
	port := listenTCP(t)
	denied := fmt.Sprintf("127.0.0.1:%d", listenTCP(t))
	l := newLoader(t)
	grpA, grpB := newGroup(t), newGroup(t)
	ja, err := l.Register(grpA.ID(), grpA.V2Path(), loopbackPolicy(port))
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	t.Cleanup(func() { _ = ja.Close() })
	jb, err := l.Register(grpB.ID(), grpB.V2Path(), loopbackPolicy(port))
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	t.Cleanup(func() { _ = jb.Close() })
	nested := filepath.Join(grpA.V2Path(), "nested")
	if err := os.Mkdir(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(nested) })
	fd, err := unix.Open(nested, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)

	try := []attempt{{Op: "connect", Addr: denied}}
	pidA, resA := runHelper(t, grpA, try)
	pidB, resB := runHelper(t, grpB, try)
	pidN, resN := runHelperInFD(t, fd, try)
	if resA[0] != "EPERM" || resB[0] != "EPERM" || resN[0] != "EPERM" {
		t.Fatalf("denied connect: jail A %s, jail B %s, nested %s; want EPERM each", resA[0], resB[0], resN[0])
	}
	ctx, cancel := context.WithTimeout(t.Context(), hangBound)
	defer cancel()
	if err := l.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	// After Sync every record is queued: what is not there now was misrouted.
	for _, c := range []struct {
		name string
		ch   <-chan Event
		pid  int
		id   uint64
	}{{"jail A", ja.Events(), pidA, grpA.ID()}, {"jail B", jb.Events(), pidB, grpB.ID()}, {"loader", l.Events(), pidN, 0}} {
		evs := queued(c.ch)
		found := false
		for _, ev := range evs {
			if ev.PID != c.pid || (c.id != 0 && ev.CgroupID != c.id) {
				t.Errorf("%s's channel got %+v", c.name, ev)
			}
			found = found || ev.Verdict == audit.VerdictDeny
		}
		if !found {
			t.Errorf("%s's channel has no denial of pid %d after Sync: %+v", c.name, c.pid, evs)
		}
	}

	// A record written before Close reaches the channel, which then closes.
	pidB2, _ := runHelper(t, grpB, try)
	if err := jb.Close(); err != nil {
		t.Fatalf("Jail.Close: %v", err)
	}
	waitEvent(t, jb.Events(), "written before Close", func(ev Event) bool { return ev.PID == pidB2 && ev.Verdict == audit.VerdictDeny })
	waitClosed(t, jb.Events())
}

// waitClosed reads ch until it is closed.
func waitClosed(t *testing.T, ch <-chan Event) {
	t.Helper()
	timeout := time.After(hangBound)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("channel not closed")
		}
	}
}
