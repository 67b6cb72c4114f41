package seccompnotify

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func seqpacketPair(t *testing.T) (ours, theirs *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs = os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
	t.Cleanup(func() { ours.Close(); theirs.Close() })
	return ours, theirs
}

func receive(t *testing.T, conn *os.File) (*Listener, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return ReceiveListener(ctx, conn)
}

func TestReceiveEOF(t *testing.T) {
	ours, theirs := seqpacketPair(t)
	theirs.Close()
	if l, missing, err := receive(t, ours); l != nil || missing != "" || err != nil {
		t.Errorf("at EOF: %v %q %v, want nothing", l, missing, err)
	}
}

func TestReceiveMissing(t *testing.T) {
	ours, theirs := seqpacketPair(t)
	if err := SendListener(int(theirs.Fd()), nil, "no listener: EBUSY"); err != nil {
		t.Fatal(err)
	}
	if l, missing, err := receive(t, ours); l != nil || missing != "no listener: EBUSY" || err != nil {
		t.Errorf("got %v %q %v, want the reason", l, missing, err)
	}
}

// TestReceiveRefusesOtherDescriptors: a descriptor that is not a seccomp
// listener is closed and refused, never used for ioctls.
func TestReceiveRefusesOtherDescriptors(t *testing.T) {
	ours, theirs := seqpacketPair(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := SendListener(int(theirs.Fd()), r, ""); err != nil {
		t.Fatal(err)
	}
	r.Close()
	l, _, err := receive(t, ours)
	if l != nil || err == nil || !strings.Contains(err.Error(), "not a seccomp listener") {
		t.Fatalf("a pipe as the listener: %v, %v", l, err)
	}
	// The received copy was closed: the pipe's read side has no holder left.
	if _, err := w.Write([]byte{1}); err == nil {
		t.Error("the refused descriptor is still open somewhere")
	}
}

func TestReceiveMalformed(t *testing.T) {
	ours, theirs := seqpacketPair(t)
	if err := unix.Sendmsg(int(theirs.Fd()), []byte("Lx"), nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	if l, _, err := receive(t, ours); l != nil || err == nil {
		t.Errorf("malformed message: %v, %v", l, err)
	}
}

func TestReceiveStopsWithContext(t *testing.T) {
	ours, _ := seqpacketPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if l, _, err := ReceiveListener(ctx, ours); l != nil || err == nil {
		t.Errorf("cancelled wait: %v, %v", l, err)
	}
}
