package api

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// connPair is two connected SOCK_SEQPACKET ends, as the daemon's socket
// gives.
func connPair(t *testing.T) (a, b *Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	wrap := func(fd int) *Conn {
		f := os.NewFile(uintptr(fd), "seqpacket")
		defer f.Close()
		nc, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return NewConn(nc.(*net.UnixConn))
	}
	return wrap(fds[0]), wrap(fds[1])
}

// bigBuffer lets c send messages of up to maxMessage bytes, as the daemon's
// side does; it needs CAP_NET_ADMIN.
func bigBuffer(t *testing.T, c *Conn) {
	t.Helper()
	if err := c.AllowLargeMessages(); err != nil {
		msg := fmt.Sprintf("prerequisite missing: CAP_NET_ADMIN for SO_SNDBUFFORCE (%v)", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: failing instead of skipping)")
		}
		t.Skip(msg)
	}
}

// TestLargeMessagesNeedTheBiggerBuffer: a message over the default send
// buffer (208 KiB on most hosts) fails to send unless AllowLargeMessages
// made room, and then arrives whole.
func TestLargeMessagesNeedTheBiggerBuffer(t *testing.T) {
	a, b := connPair(t)
	type msg struct{ S string }
	big := msg{strings.Repeat("x", maxMessage-64)}
	// The default buffer, whatever this host's is: 208 KiB on most.
	rc, err := a.c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 208<<10) })
	if err != nil {
		t.Fatal(err)
	}
	err = a.Send(big)
	if err == nil || !errors.Is(err, unix.EMSGSIZE) {
		t.Fatalf("a %d-byte message with a 208 KiB buffer: %v, want EMSGSIZE", len(big.S), err)
	}
	// What a user sees when, say, their own profile is too large to send.
	if !strings.Contains(err.Error(), "larger than this socket's send buffer") {
		t.Errorf("error %q does not say why", err)
	}
	bigBuffer(t, a)
	if err := a.Send(big); err != nil {
		t.Fatal(err)
	}
	var got msg
	if _, err := b.Recv(&got); err != nil || got.S != big.S {
		t.Fatalf("received %d bytes, %v; want %d", len(got.S), err, len(big.S))
	}
}

// TestRecvSizesEachMessage: messages of any size up to maxMessage arrive
// whole, with their descriptors, in a buffer as large as the largest one;
// a larger one is refused and the peer's close is ErrEOF.
func TestRecvSizesEachMessage(t *testing.T) {
	a, b := connPair(t)
	type msg struct{ S string }
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	// A datagram must fit the sender's buffer: room for the largest ones.
	bigBuffer(t, a)
	for _, size := range []int{0, 10, 100 << 10, maxMessage - 64, 10} {
		want := strings.Repeat("x", size)
		if err := a.Send(msg{want}, int(w.Fd())); err != nil {
			t.Fatal(err)
		}
		var got msg
		files, err := b.Recv(&got)
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if got.S != want || len(files) != 1 {
			t.Errorf("%d bytes: got %d bytes and %d descriptors", size, len(got.S), len(files))
		}
		for _, f := range files {
			f.Close()
		}
	}
	if cap(b.buf) > maxMessage {
		t.Errorf("receive buffer of %d bytes, more than the largest message", cap(b.buf))
	}
	if _, err := a.c.Write(make([]byte, maxMessage+1)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Recv(new(msg)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized message: %v, want a refusal", err)
	}
	a2, b2 := connPair(t)
	a2.c.Close()
	if _, err := b2.Recv(new(msg)); !errors.Is(err, ErrEOF) {
		t.Errorf("after the peer's close: %v, want ErrEOF", err)
	}
}
