package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// tcpSink listens on an ephemeral port of 127.0.0.1 and closes every
// connection it accepts. It accepts with blocking system calls on a thread of
// its own: package net's poller fell behind a client looping on connect on 2
// cores, the accept queue overflowed and each dropped SYN cost the loop a 1 s
// retransmission.
type tcpSink struct {
	fd   int
	port int
	done chan struct{}
}

func newTCPSink() (*tcpSink, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tcp sink: socket: %w", err)
	}
	s := &tcpSink{fd: fd, done: make(chan struct{})}
	if err := s.listen(); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tcp sink: %w", err)
	}
	go s.acceptAndClose()
	return s, nil
}

func (s *tcpSink) listen() error {
	if err := unix.Bind(s.fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fmt.Errorf("bind 127.0.0.1:0: %w", err)
	}
	// The kernel caps the backlog at net.core.somaxconn.
	if err := unix.Listen(s.fd, 1<<16); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	sa, err := unix.Getsockname(s.fd)
	if err != nil {
		return fmt.Errorf("getsockname: %w", err)
	}
	in4, ok := sa.(*unix.SockaddrInet4)
	if !ok {
		return fmt.Errorf("getsockname: unexpected address %T", sa)
	}
	s.port = in4.Port
	return nil
}

func (s *tcpSink) acceptAndClose() {
	defer close(s.done)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for {
		nfd, _, err := unix.Accept4(s.fd, unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
			unix.Close(nfd)
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED):
		default:
			return // EINVAL after Close's shutdown
		}
	}
}

func (s *tcpSink) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// Close stops the accepting thread (shutdown wakes a blocked accept on
// Linux) and closes the socket.
func (s *tcpSink) Close() error {
	err := unix.Shutdown(s.fd, unix.SHUT_RDWR)
	<-s.done
	return errors.Join(err, unix.Close(s.fd))
}

// listenOverflows reads TcpExt ListenOverflows from /proc/net/netstat: a
// connection the sink's accept queue had no room for, which a benchmark
// round pays for with a 1 s SYN retransmission.
func listenOverflows() (int64, error) {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return 0, fmt.Errorf("read netstat: %w", err)
	}
	// Pairs of lines: "TcpExt: name name ..." then "TcpExt: value value ...".
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(values) != len(names) {
			continue
		}
		for j, n := range names {
			if n == "ListenOverflows" {
				return strconv.ParseInt(values[j], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no TcpExt ListenOverflows in /proc/net/netstat")
}
