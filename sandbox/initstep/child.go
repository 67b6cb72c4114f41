package initstep

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// sendChild sends pidfd, PID 2's, over the socket at fd.
func sendChild(fd, pidfd int) error {
	if err := unix.Sendmsg(fd, []byte{'c'}, unix.UnixRights(pidfd), nil, 0); err != nil {
		return fmt.Errorf("send the pidfd of PID 2: %w", err)
	}
	return nil
}

// ReceiveChild receives the pidfd of PID 2 from PID 1 over conn, the
// launcher's end of ChildFD. EOF means PID 1 exited before it sent one.
func ReceiveChild(conn *os.File) (*os.File, error) {
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	n, oobn, flags, _, err := unix.Recvmsg(int(conn.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("receive the pidfd of PID 2: %w", err)
	}
	var fds []int
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, fmt.Errorf("receive the pidfd of PID 2: %w", err)
		}
		for _, m := range msgs {
			got, err := unix.ParseUnixRights(&m)
			if err != nil {
				return nil, fmt.Errorf("receive the pidfd of PID 2: %w", err)
			}
			fds = append(fds, got...)
		}
	}
	if n != 1 || len(fds) != 1 || flags&unix.MSG_CTRUNC != 0 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		if n == 0 && len(fds) == 0 {
			return nil, errors.New("receive the pidfd of PID 2: PID 1 exited first")
		}
		return nil, fmt.Errorf("receive the pidfd of PID 2: %d bytes and %d descriptors", n, len(fds))
	}
	return os.NewFile(uintptr(fds[0]), "pid2-pidfd"), nil
}
