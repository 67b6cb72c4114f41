package bpf

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// seccompEventSize is struct seccomp_event (watch.h): the header, ret,
// syscall, have_args, a pad byte and six arguments.
const seccompEventSize = headerSize + 8 + 6*8

// sockTypeMask selects the type in socket's type argument; above it are
// SOCK_NONBLOCK and SOCK_CLOEXEC.
const sockTypeMask = 0xf

// decodeSeccomp decodes a syscall refused by mcpjail's seccomp deny-list
// (sockwatch.bpf.c); b is the whole record. Only socket and socketpair are
// reported today, as socket events with the same target as a refusal of
// the cgroup hook, so one rule or grep covers both layers.
func decodeSeccomp(e *Event, b []byte) error {
	if len(b) < seccompEventSize {
		return fmt.Errorf("decode event: seccomp record of %d bytes, want %d", len(b), seccompEventSize)
	}
	if e.Layer != audit.LayerSeccomp {
		return fmt.Errorf("decode event: seccomp record with layer %q", e.Layer)
	}
	body := b[headerSize:]
	if ret := int32(native.Uint32(body[0:])); ret < 0 {
		e.Errno = unix.Errno(-int64(ret))
	}
	sc := native.Uint16(body[4:])
	if sc != scSocket && sc != scSocketpair {
		return fmt.Errorf("decode event: seccomp record for %s", syscallName(sc))
	}
	name := syscallName(sc)
	e.Kind = audit.KindSocket
	if body[6] == 0 {
		e.Target = name + " (arguments unavailable)"
		e.Reason = fmt.Sprintf("%s refused with %s by the seccomp deny-list", name, errnoText(e.Errno))
	} else {
		// The kernel takes family, type and protocol as int: the low 32 bits.
		family, typ, proto := uint32(native.Uint64(body[8:])), uint32(native.Uint64(body[16:])), uint32(native.Uint64(body[24:]))
		e.Target = socketTarget(name, family, typ&sockTypeMask, proto)
		e.Reason = fmt.Sprintf("%s(%s, %s, %s) refused with %s by the seccomp deny-list", name,
			name32(familyName, family, "AF_"), sockTypeText(typ), protocolText(family, proto), errnoText(e.Errno))
	}
	if e.Action == audit.ActionKill {
		e.Reason += "; on_violation.network is kill: SIGKILL sent"
	}
	return nil
}

// name32 names a 32-bit argument with a 16-bit table; larger values are
// shown as numbers.
func name32(name func(uint16) string, v uint32, prefix string) string {
	if v > math.MaxUint16 {
		return prefix + strconv.FormatUint(uint64(v), 10)
	}
	return name(uint16(v))
}

// sockTypeText renders socket's type argument with its flags:
// "SOCK_RAW|SOCK_CLOEXEC".
func sockTypeText(typ uint32) string {
	parts := []string{name32(sockTypeName, typ&sockTypeMask, "SOCK_")}
	rest := typ &^ sockTypeMask
	for _, f := range []struct {
		name string
		bit  uint32
	}{{"SOCK_NONBLOCK", unix.SOCK_NONBLOCK}, {"SOCK_CLOEXEC", unix.SOCK_CLOEXEC}} {
		if rest&f.bit != 0 {
			parts = append(parts, f.name)
			rest &^= f.bit
		}
	}
	if rest != 0 {
		parts = append(parts, "0x"+strconv.FormatUint(uint64(rest), 16))
	}
	return strings.Join(parts, "|")
}

// protocolText names socket's protocol argument where the family gives it
// a name space; packet sockets take an ethertype in network byte order.
func protocolText(family, proto uint32) string {
	switch family {
	case afInet, afInet6:
		return name32(ipProtoConst, proto, "IPPROTO_")
	case afNetlink:
		return name32(netlinkName, proto, "NETLINK_")
	}
	return strconv.FormatUint(uint64(proto), 10)
}
