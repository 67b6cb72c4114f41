package bpf

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// encode lays a record out through the bpf2go-generated struct, so that the
// decoder's offsets are checked against the C layout, not against themselves.
func encode(t testing.TB, e netNetEvent) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, &e); err != nil {
		t.Fatal(err)
	}
	if b.Len() != netEventSize {
		t.Fatalf("generated net_event is %d bytes, decoder expects %d", b.Len(), netEventSize)
	}
	return b.Bytes()
}

func netRecord(kind uint16, reason uint8, family, port, sockType, protocol uint16, addr []byte, path string) netNetEvent {
	e := netNetEvent{
		Hdr: netEventHeader{CgroupId: 4242, BootNs: 1500, Tgid: 100, Tid: 101,
			Kind: kind, Verdict: verdictDeny, Reason: reason},
		Family: family, Port: port, SockType: sockType, Protocol: protocol,
		PathLen: uint16(len(path)),
	}
	for i, c := range []byte("curl") {
		e.Hdr.Comm[i] = int8(c)
	}
	copy(e.Addr[:], addr)
	for i := range len(path) {
		e.Path[i] = int8(path[i])
	}
	return e
}

func TestDecodeRecord(t *testing.T) {
	v4 := []byte{10, 0, 0, 1}
	v6loop := make([]byte, 16)
	v6loop[15] = 1
	mapped := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 2}
	tests := []struct {
		name   string
		rec    netNetEvent
		kind   audit.Kind
		target string
		reason string
	}{
		{"connect4", netRecord(eventConnect, reasonNoPrefix, afInet, 443, 1, 6, v4, ""),
			audit.KindConnect, "10.0.0.1:443/tcp", "no network.egress rule covers the address"},
		{"sendmsg4", netRecord(eventSendmsg, reasonPort, afInet, 53, 2, 17, []byte{127, 0, 0, 53}, ""),
			audit.KindSendmsg, "127.0.0.53:53/udp", reasonText(reasonPort)},
		{"connect6", netRecord(eventConnect, reasonNoPrefix, afInet6, 80, 1, 6, v6loop, ""),
			audit.KindConnect, "[::1]:80/tcp", reasonText(reasonNoPrefix)},
		{"v4-mapped", netRecord(eventConnect, reasonNoPrefix, afInet6, 80, 1, 6, mapped, ""),
			audit.KindConnect, "[::ffff:127.0.0.2]:80/tcp", reasonText(reasonNoPrefix)},
		{"unix connect", netRecord(eventUnixConnect, reasonUnixPath, afUnix, 0, 1, 0, nil, "/var/run/docker.sock"),
			audit.KindUnixConnect, "/var/run/docker.sock", "path not in network.unix"},
		{"unix path with trailing bytes after NUL", netRecord(eventUnixConnect, reasonUnixPath, afUnix, 0, 1, 0, nil, "/run/x.sock\x00junk"),
			audit.KindUnixConnect, "/run/x.sock", reasonText(reasonUnixPath)},
		{"unix full-length path", netRecord(eventUnixSendmsg, reasonUnixPath, afUnix, 0, 2, 0, nil, "/"+strings.Repeat("p", 107)),
			audit.KindSendmsg, "/" + strings.Repeat("p", 107), reasonText(reasonUnixPath)},
		{"abstract", netRecord(eventUnixConnect, reasonUnixAbstract, afUnix, 0, 1, 0, nil, "\x00dbus\x01x"),
			audit.KindUnixConnect, `@dbus\x01x`, "abstract UNIX sockets are not allowed"},
		{"unnamed", netRecord(eventUnixConnect, reasonUnixUnnamed, afUnix, 0, 1, 0, nil, ""),
			audit.KindUnixConnect, "(unnamed)", reasonText(reasonUnixUnnamed)},
		{"accept", netRecord(eventAccept, reasonBindPort, afInet6, 41234, 1, 6, v6loop, ""),
			audit.KindAccept, "[::1]:41234/tcp", "a TCP connection answered on a port not in network.bind (the handshake's SYN-ACK is dropped)"},
		{"raw socket", netRecord(eventSocket, reasonSocket, afInet, 0, 3, 1, nil, ""),
			audit.KindSocket, "socket AF_INET/SOCK_RAW/IPPROTO_ICMP", reasonText(reasonSocket)},
		{"mptcp", netRecord(eventSocket, reasonSocket, afInet6, 0, 1, 262, nil, ""),
			audit.KindSocket, "socket AF_INET6/SOCK_STREAM/IPPROTO_MPTCP", reasonText(reasonSocket)},
		{"packet", netRecord(eventSocket, reasonSocket, 17, 0, 3, 0x0300, nil, ""),
			audit.KindSocket, "socket AF_PACKET/SOCK_RAW", reasonText(reasonSocket)},
		{"netlink", netRecord(eventSocket, reasonNoJail, afNetlink, 0, 3, 9, nil, ""),
			audit.KindSocket, "socket AF_NETLINK/SOCK_RAW/NETLINK_AUDIT", "no jail policy for this cgroup (fail closed)"},
		{"unknown family", netRecord(eventSocket, reasonSocket, 99, 0, 77, 0, nil, ""),
			audit.KindSocket, "socket AF_99/SOCK_77", reasonText(reasonSocket)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := decodeRecord(encode(t, tc.rec))
			if err != nil {
				t.Fatal(err)
			}
			want := Event{CgroupID: 4242, PID: 100, TID: 101, Comm: "curl", Kind: tc.kind, Target: tc.target,
				Verdict: audit.VerdictDeny, Reason: tc.reason, SinceBoot: 1500 * time.Nanosecond}
			if !reflect.DeepEqual(ev, want) {
				t.Errorf("got  %+v\nwant %+v", ev, want)
			}
		})
	}
}

func TestDecodeRecordRefuses(t *testing.T) {
	good := encode(t, netRecord(eventConnect, reasonPort, afInet, 1, 1, 6, nil, ""))
	withKind := func(k uint16) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint16(b[40:], k)
		return b
	}
	withVerdict := func(v byte) []byte {
		b := bytes.Clone(good)
		b[42] = v
		return b
	}
	tests := map[string][]byte{
		"empty":           nil,
		"short header":    good[:headerSize-1],
		"short body":      good[:netEventSize-1],
		"unknown kind":    withKind(999),
		"kind zero":       withKind(0),
		"unknown verdict": withVerdict(9),
	}
	for name, b := range tests {
		if ev, err := decodeRecord(b); err == nil {
			t.Errorf("%s: decoded %+v", name, ev)
		}
	}
}

func TestAudit(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	ev := Event{PID: 7, Comm: "node", Kind: audit.KindConnect, Target: "[::1]:80/tcp", Verdict: audit.VerdictDeny, Reason: "r"}
	a := ev.Audit(now)
	if a.Time != now || a.PID != 7 || a.Comm != "node" || a.Kind != audit.KindConnect || a.Target != ev.Target ||
		a.Verdict != audit.VerdictDeny || a.Layer != audit.LayerBPF || a.Action != audit.ActionNone || a.Reason != "r" {
		t.Errorf("Audit() = %+v", a)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(encode(f, netRecord(eventConnect, reasonPort, afInet6, 443, 1, 6, []byte{0x20, 1, 0xd, 0xb8}, "")))
	f.Add(encode(f, netRecord(eventUnixConnect, reasonUnixAbstract, afUnix, 0, 1, 0, nil, "\x00\xff\xfe")))
	f.Add(encode(f, netRecord(eventSocket, reasonSocket, afNetlink, 0, 3, 0xffff, nil, "")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decodeRecord(b)
		if err != nil {
			return
		}
		// kill_event and task_event are the shortest records; each decoder
		// checks its own size. A fork has no target, only ChildPID.
		if len(b) < killEventSize || ev.Kind == "" || (ev.Target == "" && (ev.Kind != audit.KindFork || ev.ChildPID <= 0)) {
			t.Fatalf("accepted %d bytes as %+v", len(b), ev)
		}
		if ev.Verdict != audit.VerdictAllow && ev.Verdict != audit.VerdictDeny {
			t.Fatalf("verdict %q", ev.Verdict)
		}
	})
}
