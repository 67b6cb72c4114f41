// Package sockdiag destroys the TCP and UDP sockets that belong to a cgroup,
// through the kernel's sock_diag netlink interface (SOCK_DESTROY, with a
// cgroup-id filter in the dump request).
//
// When a jail ends, its processes die but their sockets may not: a TCP
// socket closed with data in its send queue lives on as an orphan and keeps
// transmitting. While the jail's eBPF programs are attached that data is
// still filtered (and dropped after an egress-budget violation); once they
// are detached it would flow freely. Destroying the jail's sockets before
// detaching closes that gap.
package sockdiag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Layouts from linux/inet_diag.h (native byte order, as netlink uses).
const (
	sizeofSockID  = 48 // struct inet_diag_sockid
	sizeofReqV2   = 8 + sizeofSockID
	sizeofDiagMsg = 4 + sizeofSockID + 20 // struct inet_diag_msg

	inetDiagReqBytecode = 1  // INET_DIAG_REQ_BYTECODE attribute
	inetDiagBCCgroup    = 13 // INET_DIAG_BC_CGROUP_COND
	allStates           = 0xffffffff
)

var native = binary.NativeEndian

// DestroyCgroupSockets destroys every TCP and UDP socket, IPv4 and IPv6,
// whose cgroup (v2) id is cgroupID, and returns how many it destroyed.
// Sockets that vanish on their own meanwhile are not errors.
//
// The four tables are walked at once, each on its own netlink socket: a
// dump walks every bucket of the kernel's hash table whatever the filter,
// which takes a fraction of a millisecond even on an idle host, and a
// jail's end waits for it.
func DestroyCgroupSockets(cgroupID uint64) (int, error) {
	type table struct{ family, proto uint8 }
	tables := []table{{unix.AF_INET, unix.IPPROTO_TCP}, {unix.AF_INET6, unix.IPPROTO_TCP}, {unix.AF_INET, unix.IPPROTO_UDP}, {unix.AF_INET6, unix.IPPROTO_UDP}}
	counts := make([]int, len(tables))
	errs := make([]error, len(tables))
	var wg sync.WaitGroup
	for i, t := range tables {
		wg.Go(func() { counts[i], errs[i] = destroyIn(t.family, t.proto, cgroupID) })
	}
	wg.Wait()
	total := 0
	for _, n := range counts {
		total += n
	}
	return total, errors.Join(errs...)
}

// destroyIn destroys the cgroup's sockets of one family and protocol.
func destroyIn(family, proto uint8, cgroupID uint64) (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, fmt.Errorf("sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("bind sock_diag socket: %w", err)
	}
	ids, err := dump(fd, family, proto, cgroupID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		if err := destroy(fd, family, proto, id); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// request builds one sock_diag message: an inet_diag_req_v2 with the given
// socket id, and the cgroup filter when cgroupID is set.
func request(typ, flags uint16, seq uint32, family, proto uint8, id []byte, cgroupID uint64) []byte {
	payload := make([]byte, sizeofReqV2)
	payload[0], payload[1] = family, proto
	native.PutUint32(payload[4:], allStates)
	copy(payload[8:], id)
	if cgroupID != 0 {
		// One condition: "cgroup id equals", jumping to the end (accept) on a
		// match and past it (reject) otherwise.
		bc := make([]byte, 12)
		bc[0], bc[1] = inetDiagBCCgroup, 12 // code, yes
		native.PutUint16(bc[2:], 16)        // no
		native.PutUint64(bc[4:], cgroupID)
		attr := make([]byte, 4, 4+len(bc))
		native.PutUint16(attr[0:], uint16(4+len(bc)))
		native.PutUint16(attr[2:], inetDiagReqBytecode)
		payload = append(payload, append(attr, bc...)...)
	}
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(payload))
	native.PutUint32(msg[0:], uint32(unix.NLMSG_HDRLEN+len(payload)))
	native.PutUint16(msg[4:], typ)
	native.PutUint16(msg[6:], flags)
	native.PutUint32(msg[8:], seq)
	return append(msg, payload...)
}

// dump lists the socket ids (raw inet_diag_sockid, cookie included) of the
// cgroup's sockets of one family and protocol.
func dump(fd int, family, proto uint8, cgroupID uint64) ([][]byte, error) {
	req := request(unix.SOCK_DIAG_BY_FAMILY, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, 1, family, proto, nil, cgroupID)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sock_diag dump request: %w", err)
	}
	var ids [][]byte
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("sock_diag dump: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("sock_diag dump: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return ids, nil
			case unix.NLMSG_ERROR:
				if err := netlinkError(m.Data); err != nil {
					return nil, fmt.Errorf("sock_diag dump (family %d, protocol %d): %w", family, proto, err)
				}
			default:
				if len(m.Data) < sizeofDiagMsg {
					return nil, fmt.Errorf("sock_diag dump: short message of %d bytes", len(m.Data))
				}
				ids = append(ids, append([]byte(nil), m.Data[4:4+sizeofSockID]...))
			}
		}
	}
}

// destroy asks the kernel to abort one socket (tcp_abort / udp_abort).
func destroy(fd int, family, proto uint8, id []byte) error {
	req := request(unix.SOCK_DESTROY, unix.NLM_F_REQUEST|unix.NLM_F_ACK, 2, family, proto, id, 0)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag destroy request: %w", err)
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return fmt.Errorf("sock_diag destroy: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil || len(msgs) == 0 || msgs[0].Header.Type != unix.NLMSG_ERROR {
		return fmt.Errorf("sock_diag destroy: unexpected reply (%v)", err)
	}
	if err := netlinkError(msgs[0].Data); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("sock_diag destroy: %w", err)
	}
	return nil
}

// netlinkError decodes the errno of an NLMSG_ERROR payload (0: an ack).
func netlinkError(data []byte) error {
	if len(data) < 4 {
		return errors.New("truncated netlink error")
	}
	if code := int32(native.Uint32(data)); code < 0 {
		return unix.Errno(-code)
	}
	return nil
}
