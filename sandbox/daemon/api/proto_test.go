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

// bigBuffer raises c's send buffer to size bytes (SO_SNDBUFFORCE as root,
// else up to net.core.wmem_max).
func bigBuffer(t *testing.T, c *Conn, size int) {
	t.Helper()
	rc, err := c.c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, size)
		}
		got, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got < size {
		msg := fmt.Sprintf("send buffer of %d bytes, want %d: not root and net.core.wmem_max is lower", got, size)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
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
	bigBuffer(t, a, 2*maxMessage)
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
