package bpf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// Event is one decoded kernel record.
type Event struct {
	// CgroupID is the v2 cgroup id of the task (the jail's, as registered).
	CgroupID uint64
	PID      int // thread-group id (the process)
	TID      int
	Comm     string
	Kind     audit.Kind
	// Target is what was tried: "10.0.0.1:443/tcp", "[::1]:80/tcp",
	// "/var/run/docker.sock", "socket AF_PACKET/SOCK_RAW".
	Target  string
	Verdict audit.Verdict
	Reason  string
	// SinceBoot is the kernel's CLOCK_BOOTTIME when the record was made.
	SinceBoot time.Duration
	// Action is what the kernel side asks of user space: ActionKill when the
	// profile says kill (an egress budget exceeded with network: kill; a
	// refused exec or network call, whose caller the kernel already sent
	// SIGKILL); the caller kills the jail's whole cgroup. Empty when the
	// record says nothing.
	Action audit.Action
	// Layer is which mechanism refused; empty means the eBPF programs. A
	// refusal Landlock or seccomp made, seen by a tracepoint, says
	// audit.LayerLandlock or audit.LayerSeccomp.
	Layer audit.Layer

	// Watch records (record_watch.go) fill these as well:
	// Path is the file of an exec or open as the caller passed it, complete
	// (PathMax). For an open, a relative Path is relative to DirFD.
	Path string
	// DirFD is the directory fd of an open: unix.AT_FDCWD for the cwd.
	DirFD int
	// Flags are an open's flags (O_*).
	Flags uint64
	// Errno is the error of a refused exec, open or network call.
	Errno syscall.Errno
	// Args is an exec's argv as the new image sees it, up to ArgsMax bytes;
	// ArgsTruncated says there were more (ArgCount is the full count).
	Args          []string
	ArgsTruncated bool
	ArgCount      int

	// ChildPID is the new process of a fork event.
	ChildPID int
	// ExitCode is a task_exit's status as a shell reports it (the code, or
	// 128+N after signal N); ExitSignal is N, 0 after a normal exit.
	ExitCode   int
	ExitSignal syscall.Signal
}

// Audit turns the event into an audit record; the caller sets Server,
// Action when the event has none (and Reason, when it adds to it).
func (e Event) Audit(now time.Time) audit.Event {
	action := e.Action
	if action == "" {
		action = audit.ActionNone
	}
	layer := e.Layer
	if layer == "" {
		layer = audit.LayerBPF
	}
	a := audit.Event{Time: now, PID: e.PID, Comm: e.Comm, Kind: e.Kind, Target: e.Target,
		Verdict: e.Verdict, Layer: layer, Action: action, Reason: e.Reason, ChildPID: e.ChildPID}
	if e.Kind == audit.KindTaskExit {
		code := e.ExitCode
		a.ExitCode = &code
	}
	return a
}

// Record layout (struct event_header and struct net_event in common.h;
// native byte order, which is little-endian on every bpfel target).
const (
	headerSize   = 48
	netEventSize = headerSize + 8 + 16 + 2 + unixPathMax + 2
)

var native = binary.LittleEndian

// decodeRecord decodes one ring-buffer record. Records come from our own
// programs, but the decoder still treats them as untrusted bytes.
func decodeRecord(b []byte) (Event, error) {
	if len(b) < headerSize {
		return Event{}, fmt.Errorf("decode event: %d bytes, shorter than the %d-byte header", len(b), headerSize)
	}
	e := Event{
		CgroupID:  native.Uint64(b[0:]),
		SinceBoot: time.Duration(native.Uint64(b[8:])),
		PID:       int(native.Uint32(b[16:])),
		TID:       int(native.Uint32(b[20:])),
		Comm:      cString(b[24:40]),
	}
	kind, verdict, reason := native.Uint16(b[40:]), b[42], b[43]
	switch verdict {
	case verdictAllow:
		e.Verdict = audit.VerdictAllow
	case verdictDeny:
		e.Verdict = audit.VerdictDeny
	default:
		return Event{}, fmt.Errorf("decode event: unknown verdict %d", verdict)
	}
	if err := decodeActionLayer(&e, b[44], b[45]); err != nil {
		return Event{}, err
	}
	switch kind {
	case eventConnect, eventSendmsg, eventUnixConnect, eventUnixSendmsg, eventSocket, eventAccept:
		if len(b) < netEventSize {
			return Event{}, fmt.Errorf("decode event: kind %d record of %d bytes, want %d", kind, len(b), netEventSize)
		}
		decodeNet(&e, kind, b[headerSize:])
	case eventEgressBudget:
		// The body carries its own reason text and action (egress.go).
		if err := decodeBudget(&e, reason, b[headerSize:]); err != nil {
			return Event{}, err
		}
		return e, nil
	case eventExec, eventOpen, eventKill:
		// The watch decoders write their own reason text.
		if err := decodeWatch(&e, kind, b); err != nil {
			return Event{}, err
		}
		return e, nil
	case eventSeccomp:
		if err := decodeSeccomp(&e, b); err != nil {
			return Event{}, err
		}
		return e, nil
	case eventLSMExec, eventLSMOpen:
		if err := decodeLSMFile(&e, kind, reason, b); err != nil {
			return Event{}, err
		}
		return e, nil
	case eventFork, eventTaskExit:
		if err := decodeTask(&e, kind, b); err != nil {
			return Event{}, err
		}
		return e, nil
	default:
		return Event{}, fmt.Errorf("decode event: unknown kind %d", kind)
	}
	e.Reason = reasonText(reason)
	return e, nil
}

// decodeNet fills kind and target from a net_event body.
func decodeNet(e *Event, kind uint16, b []byte) {
	family := native.Uint16(b[0:])
	port := native.Uint16(b[2:])
	sockType := native.Uint16(b[4:])
	protocol := native.Uint16(b[6:])
	addr := b[8:24]
	pathLen := min(int(native.Uint16(b[24:])), unixPathMax)
	path := b[26 : 26+unixPathMax]

	switch kind {
	case eventConnect:
		e.Kind = audit.KindConnect
	case eventSendmsg, eventUnixSendmsg:
		e.Kind = audit.KindSendmsg
	case eventUnixConnect:
		e.Kind = audit.KindUnixConnect
	case eventAccept:
		e.Kind = audit.KindAccept
	case eventSocket:
		e.Kind = audit.KindSocket
		e.Target = socketTarget("socket", uint32(family), uint32(sockType), uint32(protocol))
		return
	}
	switch family {
	case afInet:
		e.Target = netip.AddrPortFrom(netip.AddrFrom4([4]byte(addr[:4])), port).String() + "/" + ipProtoName(protocol)
	case afInet6:
		e.Target = netip.AddrPortFrom(netip.AddrFrom16([16]byte(addr)), port).String() + "/" + ipProtoName(protocol)
	case afUnix:
		e.Target = unixTarget(path[:pathLen])
	default:
		e.Target = "family " + familyName(family)
	}
}

// unixTarget renders a sun_path: a pathname up to its first NUL, an abstract
// name as "@name" with non-printable bytes escaped, an empty one as "(unnamed)".
func unixTarget(p []byte) string {
	switch {
	case len(p) == 0:
		return "(unnamed)"
	case p[0] == 0:
		q := strconv.QuoteToASCII(string(p[1:]))
		return "@" + q[1:len(q)-1]
	}
	if i := bytes.IndexByte(p, 0); i >= 0 {
		p = p[:i]
	}
	return string(p)
}

// socketTarget renders a socket kind: "socket AF_INET/SOCK_RAW/IPPROTO_ICMP";
// call is socket or socketpair, sockType is without its flags.
func socketTarget(call string, family, sockType, protocol uint32) string {
	s := call + " " + name32(familyName, family, "AF_") + "/" + name32(sockTypeName, sockType, "SOCK_")
	switch family {
	case afInet, afInet6:
		if protocol != 0 {
			s += "/" + name32(ipProtoConst, protocol, "IPPROTO_")
		}
	case afNetlink:
		s += "/" + name32(netlinkName, protocol, "NETLINK_")
	}
	return s
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func reasonText(r uint8) string {
	switch r {
	case reasonNone:
		return ""
	case reasonNoJail:
		return "no jail policy for this cgroup (fail closed)"
	case reasonNoPrefix:
		return "no network.egress rule covers the address"
	case reasonPort:
		return "network.egress allows the address but not this port and protocol"
	case reasonProtocol:
		return "only TCP and UDP are allowed"
	case reasonUnixPath:
		return "path not in network.unix"
	case reasonUnixAbstract:
		return "abstract UNIX sockets are not allowed"
	case reasonUnixUnnamed:
		return "UNIX address without a path"
	case reasonSocket:
		return "socket kind not allowed (IPv4/IPv6 sockets must be TCP or UDP)"
	case reasonBindPort:
		return "a TCP connection answered on a port not in network.bind (the handshake's SYN-ACK is dropped)"
	case reasonIPv6Headers:
		return "IPv6 extension headers too many to find the transport header: the packet is dropped (fail closed)"
	}
	return "reason " + strconv.Itoa(int(r))
}
