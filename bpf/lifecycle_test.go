package bpf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/profiles"
)

var attachTypes = []ebpf.AttachType{
	ebpf.AttachCGroupInet4Connect, ebpf.AttachCGroupInet6Connect,
	ebpf.AttachCGroupUDP4Sendmsg, ebpf.AttachCGroupUDP6Sendmsg,
	ebpf.AttachCgroupUnixConnect, ebpf.AttachCgroupUnixSendmsg,
	ebpf.AttachCGroupInetSockCreate,
}

// attachedTo counts the programs attached directly to a cgroup directory.
func attachedTo(t *testing.T, dir string) int {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for _, at := range attachTypes {
		res, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: at})
		if err != nil {
			t.Fatalf("query %s on %s: %v", at, dir, err)
		}
		n += len(res.Programs)
	}
	return n
}

// entries counts the entries of every rule map.
func entries(t *testing.T, l *Loader) int {
	t.Helper()
	n := 0
	for _, m := range []*ebpf.Map{l.objs.McpjailJails, l.objs.McpjailEgress4, l.objs.McpjailEgress6, l.objs.McpjailUnix} {
		it := m.Iterate()
		var k, v []byte
		for it.Next(&k, &v) {
			n++
		}
		if err := it.Err(); err != nil {
			t.Fatalf("iterate %v: %v", m, err)
		}
	}
	return n
}

// TestNoLeftovers checks that Jail.Close removes every entry and link of the
// jail (its process then connects freely) and Loader.Close every program and map.
func TestNoLeftovers(t *testing.T) {
	requireKernel(t)
	port, other := listenTCP(t), listenTCP(t)
	l, err := Load(t.Context(), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() }) // when the test stops early; Close is idempotent
	// Every program, and every map any of them uses (.bss included).
	var progIDs []ebpf.ProgramID
	mapIDs := map[ebpf.MapID]bool{}
	for _, p := range append([]*ebpf.Program{l.objs.McpjailConn4, l.objs.McpjailConn6, l.objs.McpjailSend4, l.objs.McpjailSend6,
		l.objs.McpjailConnun, l.objs.McpjailSendun, l.objs.McpjailSock}, l.watch.programs()...) {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		progIDs = append(progIDs, id)
		ids, _ := info.MapIDs()
		for _, m := range ids {
			mapIDs[m] = true
		}
	}
	if len(mapIDs) < 6 {
		t.Fatalf("programs use maps %v; want at least the 6 of common.h and net.bpf.c", mapIDs)
	}
	// Maps no program uses (a .bss for globals) were created by the same
	// Load, next to the others: ids are handed out in order.
	lo, hi := ebpf.MapID(^uint32(0)), ebpf.MapID(0)
	for id := range mapIDs {
		lo, hi = min(lo, id), max(hi, id)
	}
	for id := lo - min(lo, 8); id <= hi+8; id++ {
		if m, err := ebpf.NewMapFromID(id); err == nil {
			if info, err := m.Info(); err == nil && (strings.HasPrefix(info.Name, "mcpjail_") || strings.HasPrefix(info.Name, ".")) {
				mapIDs[id] = true
			}
			m.Close()
		}
	}

	grp := newGroup(t)
	policy := loopbackPolicy(port, "/run/mcpjail-test.sock")
	policy.Network.Egress = append(policy.Network.Egress, profiles.EgressRule{
		Prefix: netip.MustParsePrefix("::1/128"), Protocol: profiles.ProtoAny})
	j, err := l.Register(grp.ID(), grp.V2Path(), policy)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	var linkIDs []link.ID
	for _, lk := range j.links {
		info, err := lk.Info()
		if err != nil {
			t.Fatal(err)
		}
		linkIDs = append(linkIDs, info.ID)
	}
	if got := attachedTo(t, grp.V2Path()); got != len(attachTypes) {
		t.Fatalf("%d programs attached to the jail, want %d", got, len(attachTypes))
	}
	if got := entries(t, l); got != 4 { // jail, one IPv4 and one IPv6 prefix, one UNIX path
		t.Fatalf("%d map entries after Register, want 4", got)
	}
	if _, res := runHelper(t, grp, []attempt{{Op: "connect", Addr: fmt.Sprintf("127.0.0.1:%d", other)}}); res[0] != "EPERM" {
		t.Fatalf("registered jail: got %s, want EPERM", res[0])
	}

	if err := j.Close(); err != nil {
		t.Fatalf("Jail.Close: %v", err)
	}
	if got := attachedTo(t, grp.V2Path()); got != 0 {
		t.Errorf("%d programs still attached after Jail.Close", got)
	}
	if got := entries(t, l); got != 0 {
		t.Errorf("%d map entries left after Jail.Close", got)
	}
	for _, id := range linkIDs {
		waitGone(t, fmt.Sprintf("link %d", id), func() (io.Closer, error) { return link.NewFromID(id) })
	}
	if _, res := runHelper(t, grp, []attempt{{Op: "connect", Addr: fmt.Sprintf("127.0.0.1:%d", other)}}); res[0] != "ok" {
		t.Errorf("after Jail.Close: got %s, want ok", res[0])
	}

	if n := pendingEntries(t, l); n != 0 {
		t.Errorf("%d saved syscall arguments left after Jail.Close", n)
	}
	// The tracepoint links are the loader's, not the jail's: they go with Close.
	var watchLinks []link.ID
	for _, lk := range l.watch.links {
		info, err := lk.Info()
		if err != nil {
			t.Fatal(err)
		}
		watchLinks = append(watchLinks, info.ID)
	}
	if len(watchLinks) < 2+12 { // two tp_btf, and at least the syscall tracepoints every architecture has
		t.Fatalf("%d watch links, want at least 14", len(watchLinks))
	}

	if err := l.Close(); err != nil {
		t.Fatalf("Loader.Close: %v", err)
	}
	for _, id := range watchLinks {
		waitGone(t, fmt.Sprintf("watch link %d", id), func() (io.Closer, error) { return link.NewFromID(id) })
	}
	// The kernel frees programs, and then the maps they hold, after an RCU
	// grace period: wait for each id to go. A pin anywhere would keep its
	// object alive, so this also proves that Load pinned nothing (a walk of
	// /sys/fs/bpf by name would trip over a concurrent daemon test's pins).
	for _, id := range progIDs {
		waitGone(t, fmt.Sprintf("program %d", id), func() (io.Closer, error) { return ebpf.NewProgramFromID(id) })
	}
	for id := range mapIDs {
		waitGone(t, fmt.Sprintf("map %d", id), func() (io.Closer, error) { return ebpf.NewMapFromID(id) })
	}
}

// waitGone waits until open reports that the object no longer exists.
func waitGone(t *testing.T, what string, open func() (io.Closer, error)) {
	t.Helper()
	deadline := time.Now().Add(hangBound)
	for {
		c, err := open()
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if err == nil {
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Errorf("%s still exists after closing (%v)", what, err)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRegisterAtomic checks that a refused registration leaves nothing.
func TestRegisterAtomic(t *testing.T) {
	requireKernel(t)
	l := newLoader(t)
	grp := newGroup(t)

	tooMany := loopbackPolicy(80)
	for p := uint16(1000); p < 1000+2*MaxPortRanges; p += 2 {
		tooMany.Network.Egress[0].Ports = append(tooMany.Network.Egress[0].Ports, profiles.PortRange{Lo: p, Hi: p})
	}
	tooMany.Network.Egress = append(tooMany.Network.Egress, profiles.EgressRule{Prefix: netip.MustParsePrefix("10.0.0.0/8")})
	tooMany.Network.Unix = []string{"/run/a.sock"}
	if _, err := l.Register(grp.ID(), grp.V2Path(), tooMany); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("Register with too many port ranges: %v, want an error saying the limit", err)
	}
	if _, err := l.Register(grp.ID()+1, grp.V2Path(), loopbackPolicy(80)); err == nil {
		t.Fatal("Register with a cgroup id that is not the directory's succeeded")
	}
	if got := entries(t, l); got != 0 {
		t.Errorf("%d map entries after refused registrations", got)
	}
	if got := attachedTo(t, grp.V2Path()); got != 0 {
		t.Errorf("%d programs attached after refused registrations", got)
	}

	j, err := l.Register(grp.ID(), grp.V2Path(), loopbackPolicy(80))
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	defer j.Close()
	if _, err := l.Register(grp.ID(), grp.V2Path(), loopbackPolicy(81)); err == nil {
		t.Error("a second Register of the same cgroup succeeded")
	}
}

// TestNestedCgroupFailsClosed checks that a task in a cgroup created below
// a jail, which has no entry of its own, is denied rather than let through.
func TestNestedCgroupFailsClosed(t *testing.T) {
	requireKernel(t)
	port := listenTCP(t)
	l := newLoader(t)
	events := collect(l)
	grp := newGroup(t)
	j, err := l.Register(grp.ID(), grp.V2Path(), loopbackPolicy(port))
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	defer j.Close()
	child := filepath.Join(grp.V2Path(), "nested")
	if err := os.Mkdir(child, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(child)
	fd, err := unix.Open(child, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	pid, res := runHelperInFD(t, fd, []attempt{{Op: "connect", Addr: fmt.Sprintf("127.0.0.1:%d", port)}})
	if res[0] != "EPERM" {
		t.Fatalf("allowed port from a nested cgroup: got %s, want EPERM", res[0])
	}
	// socket() itself is refused: sock_create is the first hook on the way.
	if ev := events.wait(t, "socket", "socket AF_INET/SOCK_STREAM/IPPROTO_TCP", pid); ev.Reason != reasonText(reasonNoJail) {
		t.Errorf("event reason %q, want %q", ev.Reason, reasonText(reasonNoJail))
	}
}

// TestCloseAfterCgroupRemoved follows the launcher's order: the jail's
// processes die and its cgroup goes first (enforcement stays until the very
// end), then the jail is unregistered without error or leftovers.
func TestCloseAfterCgroupRemoved(t *testing.T) {
	requireKernel(t)
	l := newLoader(t)
	grp := newGroup(t)
	j, err := l.Register(grp.ID(), grp.V2Path(), loopbackPolicy(80))
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), hangBound)
	defer cancel()
	if err := grp.Remove(ctx); err != nil {
		t.Fatalf("remove cgroup with programs attached: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("Jail.Close after the cgroup is gone: %v", err)
	}
	if got := entries(t, l); got != 0 {
		t.Errorf("%d map entries left", got)
	}
}

// TestDetachFiles: the duplicates keep the watch links, and so their
// programs, attached after Close; closing them detaches everything.
func TestDetachFiles(t *testing.T) {
	requireKernel(t)
	l, err := Load(t.Context(), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	var ids []link.ID
	for _, lk := range l.watch.links {
		info, err := lk.Info()
		if err != nil {
			t.Fatalf("link info: %v", err)
		}
		ids = append(ids, info.ID)
	}
	files, err := l.DetachFiles()
	if err != nil {
		t.Fatalf("DetachFiles: %v", err)
	}
	if len(files) != len(ids) || len(ids) == 0 {
		t.Fatalf("DetachFiles gave %d files for %d watch links", len(files), len(ids))
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, id := range ids {
		lk, err := link.NewFromID(id)
		if err != nil {
			t.Fatalf("link %d gone after Close with its duplicate held: %v", id, err)
		}
		lk.Close()
	}
	if again, err := l.DetachFiles(); err != nil || len(again) != 0 {
		t.Errorf("DetachFiles after Close: %d files, %v; want none", len(again), err)
	}
	for _, f := range files {
		f.Close()
	}
	// A link is freed once its last reference is gone, which the kernel
	// may defer past an RCU grace period.
	deadline := time.Now().Add(10 * time.Second)
	for _, id := range ids {
		for {
			lk, err := link.NewFromID(id)
			if err != nil {
				break
			}
			lk.Close()
			if time.Now().After(deadline) {
				t.Fatalf("link %d still exists after its last descriptor was closed", id)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
