package bpf

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/cgroup"
)

// envEgressHelper turns the test binary into a helper that runs the
// egressStep list JSON-encoded in the variable. It is checked in init, before
// helpers_test.go's TestMain, so that file needs no knowledge of it.
const envEgressHelper = "MCPJAIL_BPF_TEST_EGRESS"

func init() {
	if spec := os.Getenv(envEgressHelper); spec != "" {
		os.Exit(runEgressSteps(spec))
	}
}

// egressStep is one thing the egress helper does.
type egressStep struct {
	// "udp": one datagram of Size bytes; "tcp": stream Size bytes; "sleep";
	// "serve": listen on Addr and send to whoever connects, in the background
	Op   string
	Addr string // "127.0.0.1:port" or "[::1]:port"
	Size int
	// Wait bounds a "tcp" stream (its write deadline) or is the "sleep".
	Wait time.Duration
}

// runEgressSteps prints one result per step: "ok", an errno name, or for a
// stream that did not complete "short".
func runEgressSteps(spec string) int {
	var steps []egressStep
	if err := json.Unmarshal([]byte(spec), &steps); err != nil {
		fmt.Fprintln(os.Stderr, "egress helper:", err)
		return 2
	}
	results := make([]string, len(steps))
	for i, s := range steps {
		results[i] = s.run()
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		return 2
	}
	return 0
}

func (s egressStep) run() string {
	switch s.Op {
	case "sleep":
		time.Sleep(s.Wait)
		return "ok"
	case "udp":
		sa, domain, err := sockaddrOf(s.Addr)
		if err != nil {
			return err.Error()
		}
		fd, err := unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return errnoName(err)
		}
		defer unix.Close(fd)
		return errnoName(unix.Sendto(fd, make([]byte, s.Size), 0, sa))
	case "tcp":
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			return errnoName(err)
		}
		defer c.Close()
		// A small, fixed send buffer: a write larger than budget plus
		// buffer cannot complete when the budget holds.
		if err := c.(*net.TCPConn).SetWriteBuffer(64 << 10); err != nil {
			return err.Error()
		}
		if err := c.SetWriteDeadline(time.Now().Add(s.Wait)); err != nil {
			return err.Error()
		}
		if _, err := c.Write(make([]byte, s.Size)); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return "short"
			}
			return errnoName(err)
		}
		return "ok"
	case "serve":
		return serve(s.Addr)
	}
	return "unknown op " + s.Op
}

// serve listens on addr for the rest of the helper's life and writes
// "hostile" to whoever connects: a server offering data to the outside.
func serve(addr string) string {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return errnoName(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hostile"))
			c.Close()
		}
	}()
	return "ok"
}

// runEgressHelper runs steps in a child born in grp (nil: the test's own
// cgroup) and returns its pid and results.
func runEgressHelper(t *testing.T, grp *cgroup.Group, steps []egressStep) (int, []string) {
	t.Helper()
	pid, results, killed := runEgressHelperMayDie(t, grp, steps)
	if killed {
		t.Fatalf("egress helper %d was killed", pid)
	}
	return pid, results
}

// runEgressHelperMayDie is runEgressHelper for a jail with network: kill,
// where a refused call gets the caller SIGKILLed (netwatch.bpf.c): killed
// says it was, and then there are no results.
func runEgressHelperMayDie(t *testing.T, grp *cgroup.Group, steps []egressStep) (pid int, results []string, killed bool) {
	t.Helper()
	cmd, out, err, ctxErr := helperRunIn(t, grp, envEgressHelper, steps)
	if cmd.ProcessState != nil && ctxErr == nil { // a kill by the hang bound is a failure
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return cmd.Process.Pid, nil, true
		}
	}
	if err != nil {
		t.Fatalf("egress helper: %v (output %q)", err, out.String())
	}
	if err := json.Unmarshal(out.Bytes(), &results); err != nil {
		t.Fatalf("egress helper output %q: %v", out.String(), err)
	}
	return cmd.Process.Pid, results, false
}

// tcpSink counts the bytes each accepted connection delivers.
type tcpSink struct {
	addr  string
	mu    sync.Mutex
	conns []*sinkConn
	added chan struct{} // signalled on every accept
}

type sinkConn struct {
	c    net.Conn
	mu   sync.Mutex
	n    int64
	done chan struct{} // closed at EOF or error
}

func (c *sinkConn) received() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// newTCPSink listens on 127.0.0.1 until the test ends.
func newTCPSink(t *testing.T) *tcpSink {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tcpSink{addr: ln.Addr().String(), added: make(chan struct{}, 16)}
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			c.c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			sc := &sinkConn{c: c, done: make(chan struct{})}
			s.mu.Lock()
			s.conns = append(s.conns, sc)
			s.mu.Unlock()
			s.added <- struct{}{}
			go sc.drain()
		}
	}()
	return s
}

func (c *sinkConn) drain() {
	defer close(c.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := c.c.Read(buf)
		c.mu.Lock()
		c.n += int64(n)
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// conn returns the i-th accepted connection (from 0), waiting for it.
func (s *tcpSink) conn(t *testing.T, i int) *sinkConn {
	t.Helper()
	deadline := time.After(hangBound)
	for {
		s.mu.Lock()
		if i < len(s.conns) {
			c := s.conns[i]
			s.mu.Unlock()
			return c
		}
		s.mu.Unlock()
		select {
		case <-s.added:
		case <-deadline:
			t.Fatalf("the sink never accepted connection %d", i)
		}
	}
}

// waitEOF waits until the peer closed the connection and returns the total.
func (c *sinkConn) waitEOF(t *testing.T) int64 {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(hangBound):
		t.Fatalf("the sender never closed its connection (%d bytes so far)", c.received())
	}
	return c.received()
}

// waitFor returns the first collected event that match accepts.
func (c *collector) waitFor(t *testing.T, what string, match func(Event) bool) Event {
	t.Helper()
	deadline := time.Now().Add(hangBound)
	for time.Now().Before(deadline) {
		c.follow()
		c.mu.Lock()
		for _, ev := range c.events {
			if match(ev) {
				c.mu.Unlock()
				return ev
			}
		}
		c.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Fatalf("no event %s; got %+v", what, c.events)
	return Event{}
}

// count is how many collected events match accepts.
func (c *collector) count(match func(Event) bool) int {
	c.follow()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, ev := range c.events {
		if match(ev) {
			n++
		}
	}
	return n
}
