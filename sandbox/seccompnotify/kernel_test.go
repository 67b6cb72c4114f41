package seccompnotify

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/features/confinement"
)

var helperRules = map[int]Rule{unix.SYS_BPF: {Name: "bpf", Errno: unix.EPERM, Reason: "test"}}

// collect is a report function that keeps what it is given.
type collect struct {
	mu       sync.Mutex
	refusals []Refusal
}

func (c *collect) report(r Refusal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refusals = append(c.refusals, r)
}

func (c *collect) all() []Refusal {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Refusal(nil), c.refusals...)
}

func TestStructSizesMatchTheKernel(t *testing.T) {
	if got := unsafe.Sizeof(notif{}); got != confinement.SeccompNotifSize {
		t.Errorf("notif is %d bytes, struct seccomp_notif %d", got, confinement.SeccompNotifSize)
	}
	if got := unsafe.Sizeof(notifResp{}); got != confinement.SeccompNotifRespSize {
		t.Errorf("notifResp is %d bytes, struct seccomp_notif_resp %d", got, confinement.SeccompNotifRespSize)
	}
	if got := unsafe.Sizeof(seccompData{}); got != confinement.SeccompDataSize {
		t.Errorf("seccompData is %d bytes, struct seccomp_data %d", got, confinement.SeccompDataSize)
	}
	// The ioctl numbers encode the sizes (bits 16..29).
	if got := (unix.SECCOMP_IOCTL_NOTIF_RECV >> 16) & 0x3fff; got != confinement.SeccompNotifSize {
		t.Errorf("SECCOMP_IOCTL_NOTIF_RECV encodes %d bytes", got)
	}
	if got := (unix.SECCOMP_IOCTL_NOTIF_SEND >> 16) & 0x3fff; got != confinement.SeccompNotifRespSize {
		t.Errorf("SECCOMP_IOCTL_NOTIF_SEND encodes %d bytes", got)
	}
	ok, why, err := confinement.SeccompListener()
	if err != nil || (!ok && os.Getenv("CI") == "true") {
		t.Fatalf("this kernel: listener %v (%s), %v", ok, why, err)
	}
}

// TestServeAnswersEveryCallAndReportsIt: each notified call returns the
// rule's errno and is reported once with the caller's pid and name, as
// this (the supervisor's) PID namespace sees them.
func TestServeAnswersEveryCallAndReportsIt(t *testing.T) {
	requireRoot(t)
	const calls = 5
	h := startHelper(t, "notify", calls)
	var got collect
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), h.listener, helperRules, got.report) }()
	reply := h.wait(t)
	if err := <-done; err != nil { // the helper exited: no task uses the filter
		t.Fatalf("Serve: %v", err)
	}
	if reply.Errnos["EPERM"] != calls || len(reply.Errnos) != 1 {
		t.Errorf("calls returned %v, want %d x EPERM", reply.Errnos, calls)
	}
	refusals := got.all()
	if len(refusals) != calls {
		t.Fatalf("%d refusals reported, want %d: %+v", len(refusals), calls, refusals)
	}
	comm := filepath.Base(os.Args[0])[:min(len(filepath.Base(os.Args[0])), 15)]
	for _, r := range refusals {
		if r.PID != h.cmd.Process.Pid || r.TID == 0 || r.Comm != comm || r.Target != "bpf cmd 65535" || r.Errno != unix.EPERM || r.Syscall != "bpf" {
			t.Errorf("refusal %+v, want bpf cmd 65535 from pid %d (%s)", r, h.cmd.Process.Pid, comm)
		}
	}
}

// TestClosedListenerRefusesWithENOSYS: without a supervisor the kernel
// still refuses the calls, with ENOSYS.
func TestClosedListenerRefusesWithENOSYS(t *testing.T) {
	requireRoot(t)
	h := startHelper(t, "notify", 3)
	h.listener.Close()
	if reply := h.wait(t); reply.Errnos["ENOSYS"] != 3 {
		t.Errorf("calls returned %v without a supervisor, want 3 x ENOSYS", reply.Errnos)
	}
}

// TestCallerKilledWhileWaiting: an answer to a caller that died is ENOENT,
// which Serve ignores; with every caller gone it returns.
func TestCallerKilledWhileWaiting(t *testing.T) {
	requireRoot(t)
	h := startHelper(t, "notify", 1)
	waitPending(t, h.listener)
	var n notif
	if err := h.listener.recv(&n); err != nil {
		t.Fatal(err)
	}
	h.cmd.Process.Kill()
	h.cmd.Wait()
	if err := h.listener.refuse(n.ID, unix.EPERM); !errors.Is(err, unix.ENOENT) {
		t.Errorf("answer to a dead caller: %v, want ENOENT", err)
	}
	var got collect
	if err := Serve(context.Background(), h.listener, helperRules, got.report); err != nil {
		t.Errorf("Serve after the caller died: %v", err)
	}
	if r := got.all(); len(r) != 0 {
		t.Errorf("reported %+v for a caller that never got the answer", r)
	}
}

// TestKilledBeforeReceive: a notification whose caller died before it was
// received is gone; Serve reports nothing and ends.
func TestKilledBeforeReceive(t *testing.T) {
	requireRoot(t)
	h := startHelper(t, "notify", 1)
	waitPending(t, h.listener)
	h.cmd.Process.Kill()
	h.cmd.Wait()
	var got collect
	if err := Serve(context.Background(), h.listener, helperRules, got.report); err != nil || len(got.all()) != 0 {
		t.Errorf("Serve: %v, reported %+v", err, got.all())
	}
}

// TestServeDrainsWhenStopped: calls already waiting when ctx ends are
// answered and reported before Serve returns.
func TestServeDrainsWhenStopped(t *testing.T) {
	requireRoot(t)
	h := startHelper(t, "notify", 1)
	waitPending(t, h.listener)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var got collect
	if err := Serve(ctx, h.listener, helperRules, got.report); err != nil {
		t.Fatal(err)
	}
	if r := got.all(); len(r) != 1 || r[0].Target != "bpf cmd 65535" {
		t.Errorf("reported %+v, want the waiting call", r)
	}
	if reply := h.wait(t); reply.Errnos["EPERM"] != 1 {
		t.Errorf("the waiting call returned %v, want EPERM", reply.Errnos)
	}
}

// TestStopEndsAFlood: a caller that keeps calling does not keep a stopped
// Serve going; once it returns, the calls fail with ENOSYS.
func TestStopEndsAFlood(t *testing.T) {
	requireRoot(t)
	const most = 10_000_000 // bounds the helper if the listener never closed
	h := startHelper(t, "flood", most)
	ctx, cancel := context.WithCancel(context.Background())
	var got collect
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, h.listener, helperRules, got.report) }()
	for deadline := time.Now().Add(time.Minute); len(got.all()) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no refusal reported")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	reply := h.wait(t)
	if reply.Errnos["ENOSYS"] != 1 || reply.Errnos["EPERM"] != len(got.all()) {
		t.Errorf("calls returned %v, reported %d: want every answered call reported, then ENOSYS", reply.Errnos, len(got.all()))
	}
}
