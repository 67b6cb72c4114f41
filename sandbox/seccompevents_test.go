package sandbox

import (
	"os"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/seccompnotify"
)

// watchWith runs watchSeccomp on a channel whose init side send fills in,
// and returns the events it wrote.
func watchWith(t *testing.T, send func(conn int)) []audit.Event {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	log, err := audit.Open(audit.Server{Name: "t"}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []audit.Event
	log.AddSink(func(e audit.Event) { mu.Lock(); events = append(events, e); mu.Unlock() })
	p := &prepared{events: log}
	stop := p.watchSeccomp(os.NewFile(uintptr(fds[0]), "ours"))
	send(fds[1])
	unix.Close(fds[1])
	stop()
	log.Close()
	mu.Lock()
	defer mu.Unlock()
	return events
}

func TestWatchSeccompWithoutAListener(t *testing.T) {
	if evs := watchWith(t, func(int) {}); len(evs) != 0 {
		t.Errorf("init step sent nothing (no listener planned): events %+v, want none", evs)
	}
	evs := watchWith(t, func(conn int) {
		if err := seccompnotify.SendListener(conn, nil, "seccomp refusal events (EBUSY)"); err != nil {
			t.Fatal(err)
		}
	})
	if len(evs) != 1 || evs[0].Kind != audit.KindDegraded || evs[0].Layer != audit.LayerSeccomp ||
		!strings.Contains(evs[0].Reason, "seccomp refusal events (EBUSY)") {
		t.Errorf("init step sent why it has no listener: events %+v, want one degraded event with the reason", evs)
	}
}

func TestWatchSeccompRefusesOtherDescriptors(t *testing.T) {
	evs := watchWith(t, func(conn int) {
		if err := seccompnotify.SendListener(conn, os.Stdin, ""); err != nil {
			t.Fatal(err)
		}
	})
	if len(evs) != 1 || evs[0].Kind != audit.KindDegraded || !strings.Contains(evs[0].Reason, "not a seccomp listener") {
		t.Errorf("events %+v, want one degraded event: the descriptor is no listener", evs)
	}
}
