package seccompnotify

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// The init step sends at most one message on a SOCK_SEQPACKET socket to
// the process that will answer: the listener (as SCM_RIGHTS), or why it has
// none although the plan said it would (the install was refused and the run
// allows degraded mode). No message at all, only EOF, means the init step
// installed no listener for a reason the answering side already knows (the
// plan it made), or failed and reports that itself.
const (
	msgListener = 'L'
	msgMissing  = 'M'
	// maxMessage bounds the one message read.
	maxMessage = 4096
)

// SendListener hands listener over conn, or, when listener is nil, the
// reason missing. A receiver that is gone is an error (EPIPE), not SIGPIPE.
func SendListener(conn int, listener *os.File, missing string) error {
	var err error
	if listener != nil {
		err = unix.Sendmsg(conn, []byte{msgListener}, unix.UnixRights(int(listener.Fd())), nil, unix.MSG_NOSIGNAL)
	} else {
		msg := append([]byte{msgMissing}, missing...)
		err = unix.Sendmsg(conn, msg[:min(len(msg), maxMessage)], nil, nil, unix.MSG_NOSIGNAL)
	}
	if err != nil {
		return fmt.Errorf("send the seccomp listener: %w", err)
	}
	return nil
}

// ReceiveListener waits on conn for the init step's message. It returns the
// listener, or the reason there is none (both nil and "" at EOF). ctx ends
// the wait.
func ReceiveListener(ctx context.Context, conn *os.File) (*Listener, string, error) {
	stop, release, err := stopOnDone(ctx)
	if err != nil {
		return nil, "", err
	}
	defer release()
	fd := int(conn.Fd())
	revents, _, err := waitReadable(fd, stop)
	if err != nil {
		return nil, "", fmt.Errorf("wait for the seccomp listener: %w", err)
	}
	if revents == 0 { // stopped, and nothing arrived
		return nil, "", ctx.Err()
	}
	buf := make([]byte, maxMessage)
	oob := make([]byte, unix.CmsgSpace(4*4)) // room for a few descriptors, to close them all
	n, oobn, flags, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC|unix.MSG_DONTWAIT)
	if err != nil {
		return nil, "", fmt.Errorf("receive the seccomp listener: %w", err)
	}
	files, err := receivedFiles(oob[:oobn])
	if err != nil {
		return nil, "", err
	}
	switch {
	case flags&unix.MSG_CTRUNC == 0 && n == 0 && len(files) == 0: // EOF
		return nil, "", nil
	case flags&unix.MSG_CTRUNC == 0 && n > 0 && buf[0] == msgMissing && len(files) == 0:
		return nil, string(buf[1:n]), nil
	case flags&unix.MSG_CTRUNC == 0 && n == 1 && buf[0] == msgListener && len(files) == 1:
		l, err := NewListener(files[0])
		return l, "", err
	}
	closeAll(files)
	return nil, "", fmt.Errorf("receive the seccomp listener: malformed message (%d bytes, %d descriptors, flags %#x)", n, len(files), flags)
}

func receivedFiles(oob []byte) ([]*os.File, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("receive the seccomp listener: %w", err)
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "seccomp-listener"))
		}
	}
	return files, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
