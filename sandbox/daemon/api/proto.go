// Package api is the mcpjail daemon's socket API: the messages, the
// connection that carries them (JSON over SOCK_SEQPACKET, descriptors
// attached), and the client that `mcpjail run`, `status` and `events` use.
// It is apart from the daemon so that the mcpjail binary links none of the
// daemon's own dependencies (the Prometheus client, the HTTP server), whose
// package initialisation every run would otherwise pay for.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// ProtocolVersion is the API version; a peer speaking another is refused.
const ProtocolVersion = 2

// maxMessage bounds one message. The socket is SOCK_SEQPACKET: message
// boundaries are the kernel's, and descriptors travel with their message.
const maxMessage = 1 << 20

// Operations of the API.
const (
	OpPrepare = "prepare" // resolve and compile a profile for the caller
	OpAttach  = "attach"  // create the jail and move the caller's child in (pidfd attached)
	OpRelease = "release" // the server ended: tear the jail down
	OpStatus  = "status"
	OpEvents  = "events"
)

// Request is what a client sends.
type Request struct {
	V       int             `json:"v"`
	Op      string          `json:"op"`
	Prepare *PrepareRequest `json:"prepare,omitempty"`
	Events  *EventsRequest  `json:"events,omitempty"`
}

// PrepareRequest names the profile and the run's paths.
type PrepareRequest struct {
	// Profile is a profile name from the daemon's directories or built-ins.
	Profile string `json:"profile,omitempty"`
	// ProfileYAML is the caller's own profile; only when the config allows it.
	ProfileYAML  string `json:"profile_yaml,omitempty"`
	ProfileLabel string `json:"profile_label,omitempty"` // its file name, for messages
	Name         string `json:"name,omitempty"`
	Instance     string `json:"instance"`
	Workdir      string `json:"workdir"`
	TmpDir       string `json:"tmpdir"`
	// AllowDegraded accepts missing cgroup limits instead of refusing.
	AllowDegraded bool `json:"allow_degraded,omitempty"`
}

// EventsRequest asks for recent events and, with Follow, new ones.
type EventsRequest struct {
	Follow bool   `json:"follow,omitempty"`
	Server string `json:"server,omitempty"`
}

// Reply is what the daemon sends; exactly one field besides V is set.
type Reply struct {
	V        int          `json:"v"`
	Error    *ReplyError  `json:"error,omitempty"`
	Prepared *Prepared    `json:"prepared,omitempty"`
	Attached *Attached    `json:"attached,omitempty"`
	Event    *audit.Event `json:"event,omitempty"`
	Released bool         `json:"released,omitempty"`
	Status   *Status      `json:"status,omitempty"`
	// EndOfBacklog separates recent events from followed ones.
	EndOfBacklog bool `json:"end_of_backlog,omitempty"`
}

// ReplyError is a refusal. Code is the exit status the client should use
// (2 usage or profile error, 125 refused).
type ReplyError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *ReplyError) Error() string { return e.Message }

// Prepared is the compiled policy the daemon will enforce.
type Prepared struct {
	Server audit.Server     `json:"server"`
	Policy *profiles.Policy `json:"policy"`
	// Missing are layers this daemon cannot provide on its kernel; the
	// client refuses to run without them unless --allow-degraded.
	Missing []string `json:"missing,omitempty"`
}

// Attached confirms the jail exists and holds the caller's child.
type Attached struct {
	Cgroup   string `json:"cgroup"`
	CgroupID uint64 `json:"cgroup_id"`
}

// DeclaredStatus is a declared server in `mcpjail status`.
type DeclaredStatus struct {
	Name     string `json:"name"`
	Profile  string `json:"profile"`
	User     string `json:"user"`
	State    string `json:"state"` // starting, running, backoff, exited, refused
	Restarts int    `json:"restarts"`
	LastExit int    `json:"last_exit"`
}

// Status is `mcpjail status`.
type Status struct {
	Version string       `json:"version"`
	PID     int          `json:"pid"`
	Started time.Time    `json:"started"`
	Layers  []string     `json:"layers"`
	Lost    uint64       `json:"lost"`
	Jails   []JailStatus `json:"jails"`
	// Declared are the servers of servers.d.
	Declared []DeclaredStatus `json:"declared,omitempty"`
}

// JailStatus is one row of `mcpjail status`.
type JailStatus struct {
	Server     audit.Server `json:"server"`
	User       string       `json:"user"`
	UID        int          `json:"uid"`
	PID        int          `json:"pid"`
	Profile    string       `json:"profile"`
	Started    time.Time    `json:"started"`
	Memory     uint64       `json:"memory_bytes"`
	Violations int          `json:"violations"`
	Kills      int          `json:"kills"`
	Adopted    bool         `json:"adopted,omitempty"`
}

// DefaultSocket is where the daemon listens unless configured otherwise.
const DefaultSocket = "/run/mcpjail/mcpjail.sock"

// Conn is one SOCK_SEQPACKET connection.
type Conn struct {
	c   *net.UnixConn
	buf []byte // the largest message so far, reused by Recv
}

// NewConn wraps an accepted or dialled SOCK_SEQPACKET connection.
func NewConn(c *net.UnixConn) *Conn { return &Conn{c: c} }

// AllowLargeMessages raises the connection's send buffer so that a message
// of up to maxMessage bytes can be sent: a SOCK_SEQPACKET message must fit
// the sender's buffer whole, and the default (net.core.wmem_default, 208
// KiB on most hosts) is below it. SO_SNDBUFFORCE needs CAP_NET_ADMIN,
// which the daemon has; its replies (a status of many jails) are the
// messages that grow.
func (c *Conn) AllowLargeMessages() error {
	rc, err := c.c.SyscallConn()
	if err != nil {
		return fmt.Errorf("send buffer: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		// The kernel doubles the value for its bookkeeping.
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, maxMessage+64<<10)
	}); err != nil {
		return fmt.Errorf("send buffer: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("send buffer of %d bytes (SO_SNDBUFFORCE): %w", maxMessage, serr)
	}
	return nil
}

// Send writes v as one message, with fds attached when given.
func (c *Conn) Send(v any, fds ...int) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	if len(b) > maxMessage {
		return fmt.Errorf("message of %d bytes is larger than %d", len(b), maxMessage)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	_, _, err = c.c.WriteMsgUnix(b, oob, nil)
	if errors.Is(err, unix.EMSGSIZE) {
		// A SOCK_SEQPACKET message must fit the sender's buffer whole.
		return fmt.Errorf("send message of %d bytes: larger than this socket's send buffer (net.core.wmem_default; only the daemon raises its own): %w", len(b), err)
	}
	if err != nil {
		return fmt.Errorf("send message: %w", err)
	}
	return nil
}

// Recv reads one message into v and returns the descriptors it carried,
// which the caller owns. ErrEOF means the peer closed.
func (c *Conn) Recv(v any) ([]*os.File, error) {
	size, err := c.nextSize()
	if err != nil {
		return nil, err
	}
	if size == 0 {
		return nil, ErrEOF
	}
	if size > maxMessage {
		return nil, fmt.Errorf("message of %d bytes is larger than %d", size, maxMessage)
	}
	if cap(c.buf) < size {
		c.buf = make([]byte, size)
	}
	buf := c.buf[:size]
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, flags, _, err := c.c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	files, ferr := parseRights(oob[:oobn])
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	if ferr != nil {
		closeAll()
		return nil, ferr
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		closeAll()
		return nil, errors.New("message or its descriptors truncated")
	}
	if n == 0 {
		closeAll()
		return nil, ErrEOF
	}
	if err := json.Unmarshal(buf[:n], v); err != nil {
		closeAll()
		return nil, fmt.Errorf("decode message: %w", err)
	}
	return files, nil
}

// nextSize waits for the next message and returns its length without
// reading it: with MSG_TRUNC a SOCK_SEQPACKET read returns the whole
// message's length, so Recv sizes its buffer to the message instead of
// keeping maxMessage bytes per connection (for the daemon, a megabyte of
// garbage per run). The peek installs none of the message's descriptors.
// 0 means the peer closed.
func (c *Conn) nextSize() (int, error) {
	rc, err := c.c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var (
		n    int
		rerr error
		one  [1]byte
	)
	if err := rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), one[:], unix.MSG_PEEK|unix.MSG_TRUNC)
		return !errors.Is(rerr, unix.EAGAIN)
	}); err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, rerr
	}
	return n, nil
}

// ErrEOF is a zero-length read: on SOCK_SEQPACKET, the peer's close.
var ErrEOF = errors.New("connection closed by peer")

func parseRights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse control message: %w", err)
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue // not SCM_RIGHTS (credentials are read with SO_PEERCRED)
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "passed"))
		}
	}
	return files, nil
}

// closeFiles closes descriptors received and not kept.
func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
