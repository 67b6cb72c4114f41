package bpf

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// pinnedDir mounts a bpffs of the test's own (so nothing touches the host's
// /sys/fs/bpf, and whatever a failing test leaves goes with the unmount)
// and returns a directory inside it.
func pinnedDir(t *testing.T) string {
	t.Helper()
	requireKernel(t)
	mnt := t.TempDir()
	if err := unix.Mount("bpf", mnt, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount a bpffs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount the test's bpffs: %v", err)
		}
	})
	return filepath.Join(mnt, "mcpjail")
}

func loadPinned(t *testing.T, dir string) *Loader {
	t.Helper()
	l, err := LoadPinned(t.Context(), nil, dir)
	if err != nil {
		t.Fatalf("LoadPinned: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// kernelIDs are the ids of a loader's programs, maps and global links.
type kernelIDs struct {
	progs []ebpf.ProgramID
	maps  []ebpf.MapID
	links []link.ID
}

func idsOf(t *testing.T, l *Loader) kernelIDs {
	t.Helper()
	progs, mps, err := objectFields(l.objectRoots())
	if err != nil {
		t.Fatal(err)
	}
	var ids kernelIDs
	for _, fields := range progs {
		p := fields[0].Interface().(*ebpf.Program)
		if p == nil {
			continue
		}
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		ids.progs = append(ids.progs, id)
	}
	for _, fields := range mps {
		info, err := fields[0].Interface().(*ebpf.Map).Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		ids.maps = append(ids.maps, id)
	}
	ids.links = linkIDs(t, l.watch.links)
	slices.Sort(ids.progs)
	slices.Sort(ids.maps)
	return ids
}

func linkIDs(t *testing.T, links []link.Link) []link.ID {
	t.Helper()
	var ids []link.ID
	for _, lk := range links {
		info, err := lk.Info()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, info.ID)
	}
	slices.Sort(ids)
	return ids
}

// waitAllGone waits for every object of ids to be freed by the kernel.
func waitAllGone(t *testing.T, ids kernelIDs) {
	t.Helper()
	for _, id := range ids.links {
		waitGone(t, fmt.Sprintf("link %d", id), func() (io.Closer, error) { return link.NewFromID(id) })
	}
	for _, id := range ids.progs {
		waitGone(t, fmt.Sprintf("program %d", id), func() (io.Closer, error) { return ebpf.NewProgramFromID(id) })
	}
	for _, id := range ids.maps {
		waitGone(t, fmt.Sprintf("map %d", id), func() (io.Closer, error) { return ebpf.NewMapFromID(id) })
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestPinnedSurvivesRestart is the daemon's crash and restart: a jail
// registered under a pinned loader stays enforced when the loader is gone,
// the next LoadPinned adopts it without attaching anything twice, its
// events (those written meanwhile included) are delivered, its Close
// removes all of it, and Cleanup removes everything else.
func TestPinnedSurvivesRestart(t *testing.T) {
	dir := pinnedDir(t)
	allowed := listenTCP(t)
	denied := fmt.Sprintf("127.0.0.1:%d", listenTCP(t))
	isDenial := func(pid int) func(Event) bool {
		return func(ev Event) bool {
			return ev.PID == pid && ev.Kind == audit.KindConnect && ev.Target == denied+"/tcp" && ev.Verdict == audit.VerdictDeny
		}
	}
	try := []attempt{{Op: "connect", Addr: fmt.Sprintf("127.0.0.1:%d", allowed)}, {Op: "connect", Addr: denied}}

	first := loadPinned(t, dir)
	ids := idsOf(t, first)
	if _, err := LoadPinned(t.Context(), nil, dir); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second LoadPinned while the first runs: %v, want an in-use error", err)
	}
	grp := newGroup(t)
	policy := loopbackPolicy(allowed, "/run/mcpjail-test.sock")
	policy.Network.EgressBudget = &profiles.Budget{Bytes: 1 << 30, Per: time.Minute}
	j, err := first.Register(grp.ID(), grp.V2Path(), policy)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	jailLinks := linkIDs(t, j.links)
	attached, mapEntries := attachedTo(t, grp.V2Path()), entries(t, first)
	if got := dirNames(t, filepath.Join(dir, jailsDir, strconv.FormatUint(grp.ID(), 10))); len(got) != len(jailLinks) {
		t.Fatalf("jail pins %v, want its %d links", got, len(jailLinks))
	}

	// The daemon dies: its jail stays enforced.
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := j.Close(); err == nil {
		t.Fatal("Jail.Close after its pinned loader closed succeeded; it must leave the jail pinned")
	}
	pidDead, res := runHelper(t, grp, try)
	if fmt.Sprint(res) != "[ok EPERM]" {
		t.Fatalf("with no loader running the jail got %v, want [ok EPERM]", res)
	}
	if got := attachedTo(t, grp.V2Path()); got != attached {
		t.Fatalf("%d programs attached with no loader running, want %d", got, attached)
	}

	second := loadPinned(t, dir)
	jails := second.Jails()
	if len(jails) != 1 || jails[0].CgroupID() != grp.ID() || !jails[0].Adopted() {
		t.Fatalf("adopted jails %v, want the one of cgroup %d", jails, grp.ID())
	}
	aj := jails[0]
	if got := attachedTo(t, grp.V2Path()); got != attached {
		t.Errorf("%d programs attached after adoption, want %d (nothing attached twice)", got, attached)
	}
	if got := idsOf(t, second); !slices.Equal(got.progs, ids.progs) || !slices.Equal(got.maps, ids.maps) || !slices.Equal(got.links, ids.links) {
		t.Errorf("adoption loaded or attached anew: ids %+v, pinned %+v", got, ids)
	}
	if got := linkIDs(t, aj.links); !slices.Equal(got, jailLinks) {
		t.Errorf("adopted jail links %v, registered %v", got, jailLinks)
	}
	if got := entries(t, second); got != mapEntries {
		t.Errorf("%d map entries after adoption, want %d", got, mapEntries)
	}
	if u, err := aj.EgressUsage(); err != nil || u.Budget != policy.Network.EgressBudget.Bytes {
		t.Errorf("adopted egress budget %+v, %v", u, err)
	}
	// The record written while no loader ran is there, on the loader's
	// channel until the jail is claimed; later ones on the jail's.
	waitEvent(t, second.Events(), "written with no loader running", isDenial(pidDead))
	events := aj.Events()
	pid, res := runHelper(t, grp, try)
	if fmt.Sprint(res) != "[ok EPERM]" {
		t.Fatalf("adopted jail got %v, want [ok EPERM]", res)
	}
	waitEvent(t, events, "of the adopted jail", isDenial(pid))

	// A new jail gets a policy id of its own.
	grp2 := newGroup(t)
	j2, err := second.Register(grp2.ID(), grp2.V2Path(), loopbackPolicy(allowed))
	if err != nil {
		t.Fatalf("Register next to an adopted jail: %v", err)
	}
	if j2.policyID == aj.policyID {
		t.Errorf("new jail reuses the adopted jail's policy id %d", aj.policyID)
	}
	if err := aj.Close(); err != nil {
		t.Fatalf("Close of the adopted jail: %v", err)
	}
	waitClosed(t, events)
	for _, id := range jailLinks {
		waitGone(t, fmt.Sprintf("jail link %d", id), func() (io.Closer, error) { return link.NewFromID(id) })
	}
	if got := attachedTo(t, grp.V2Path()); got != 0 {
		t.Errorf("%d programs attached after Close", got)
	}
	if got, want := entries(t, second), 2; got != want { // j2: its jail entry and one prefix
		t.Errorf("%d map entries after Close, want j2's %d", got, want)
	}
	if got := dirNames(t, filepath.Join(dir, jailsDir)); !slices.Equal(got, []string{strconv.FormatUint(grp2.ID(), 10)}) {
		t.Errorf("jail pins %v after Close, want j2's only", got)
	}
	if _, res := runHelper(t, grp, try); fmt.Sprint(res) != "[ok ok]" {
		t.Errorf("after Close the cgroup got %v, want [ok ok]", res)
	}

	// Cleanup takes everything, j2 included, and can run again.
	j2Links := linkIDs(t, j2.links)
	if err := second.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := Cleanup(dir); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pin directory after Cleanup: %v, want it gone", err)
	}
	ids.links = append(ids.links, j2Links...)
	waitAllGone(t, ids)
	if got := attachedTo(t, grp2.V2Path()); got != 0 {
		t.Errorf("%d programs attached after Cleanup", got)
	}
	if err := Cleanup(dir); err != nil {
		t.Errorf("second Cleanup: %v", err)
	}
}

// TestPinnedRefusesOtherBuild: a set stamped by another build, or an
// incomplete one, is refused with the way out, and refusing it leaves the
// jails enforced (nothing is half-adopted or detached).
func TestPinnedRefusesOtherBuild(t *testing.T) {
	dir := pinnedDir(t)
	port := listenTCP(t)
	denied := []attempt{{Op: "connect", Addr: fmt.Sprintf("127.0.0.1:%d", listenTCP(t))}}
	l := loadPinned(t, dir)
	ids := idsOf(t, l)
	grp := newGroup(t)
	j, err := l.Register(grp.ID(), grp.V2Path(), loopbackPolicy(port))
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	ids.links = append(ids.links, linkIDs(t, j.links)...)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	stampPath := filepath.Join(dir, stampPin)
	good, err := readStamp(stampPath)
	if err != nil {
		t.Fatal(err)
	}
	restamp := func(s stamp) {
		t.Helper()
		if err := os.Remove(stampPath); err != nil {
			t.Fatal(err)
		}
		if err := writeStamp(stampPath, s); err != nil {
			t.Fatal(err)
		}
	}
	other := good
	other.build[0] ^= 0xff
	restamp(other)
	refused := func(want string) {
		t.Helper()
		_, err := LoadPinned(t.Context(), nil, dir)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "mcpjail daemon --cleanup") {
			t.Fatalf("LoadPinned: %v; want an error saying %q and how to clean up", err, want)
		}
		if _, res := runHelper(t, grp, denied); res[0] != "EPERM" {
			t.Fatalf("after a refused LoadPinned the jail got %s, want EPERM", res[0])
		}
	}
	refused("another mcpjail build")

	restamp(good)
	if err := os.Remove(filepath.Join(dir, mapsDir, "mcpjail_unix")); err != nil {
		t.Fatal(err)
	}
	refused("incomplete")
	if err := os.Remove(stampPath); err != nil {
		t.Fatal(err)
	}
	refused("incomplete")

	if err := Cleanup(dir); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	waitAllGone(t, ids)
	if _, res := runHelper(t, grp, denied); res[0] != "ok" {
		t.Errorf("after Cleanup the cgroup got %s, want ok", res[0])
	}
}

// TestPinnedFinishesInterruptedClose: a jail whose Close was cut short (its
// directory already renamed <id>-closing) and entries no jail owns are removed
// by the next LoadPinned rather than adopted or refused.
func TestPinnedFinishesInterruptedClose(t *testing.T) {
	dir := pinnedDir(t)
	port := listenTCP(t)
	denied := []attempt{{Op: "connect", Addr: fmt.Sprintf("127.0.0.1:%d", listenTCP(t))}}
	l := loadPinned(t, dir)
	grp := newGroup(t)
	j, err := l.Register(grp.ID(), grp.V2Path(), loopbackPolicy(port))
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	jailLinks := linkIDs(t, j.links)
	// A rule of a registration that died before its jail entry was written.
	stray := egress4Entry{key: netEgress4Key{Prefixlen: 32 + 8, Policy: 999, Addr: [4]byte{10}}}
	if err := l.objs.McpjailEgress4.Update(&stray.key, &stray.value, ebpf.UpdateNoExist); err != nil {
		t.Fatal(err)
	}
	pinned := l.pin.jailPath(grp.ID())
	if err := os.Rename(pinned, pinned+closingSuffix); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l2 := loadPinned(t, dir)
	if js := l2.Jails(); len(js) != 0 {
		t.Fatalf("adopted %v, want nothing", js)
	}
	for _, id := range jailLinks {
		waitGone(t, fmt.Sprintf("jail link %d", id), func() (io.Closer, error) { return link.NewFromID(id) })
	}
	if got := attachedTo(t, grp.V2Path()); got != 0 {
		t.Errorf("%d programs attached", got)
	}
	if got := entries(t, l2); got != 0 {
		t.Errorf("%d map entries left", got)
	}
	if got := dirNames(t, filepath.Join(dir, jailsDir)); len(got) != 0 {
		t.Errorf("jail pins left: %v", got)
	}
	if _, res := runHelper(t, grp, denied); res[0] != "ok" {
		t.Errorf("the finished Close left the cgroup at %s, want ok", res[0])
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Cleanup(dir); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
}

// TestCleanupRefusesOtherFilesystems: Cleanup removes only pins on bpffs.
func TestCleanupRefusesOtherFilesystems(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "keep")
	if err := os.WriteFile(keep, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Cleanup(dir); err == nil || !strings.Contains(err.Error(), "bpffs") {
		t.Errorf("Cleanup of a tmpfs directory: %v, want a refusal", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("Cleanup touched a non-bpffs directory: %v", err)
	}
	if err := Cleanup(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("Cleanup of a missing directory: %v", err)
	}
}

// TestCleanupRefusesWhileLoaded: Cleanup never runs under a loader, nor on
// a bpffs mount's root (which holds the kernel's own pins).
func TestCleanupRefusesWhileLoaded(t *testing.T) {
	pinned := pinnedDir(t)
	l := loadPinned(t, pinned)
	if err := Cleanup(pinned); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("Cleanup while a loader runs: %v, want an in-use refusal", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Cleanup(pinned); err != nil {
		t.Errorf("Cleanup: %v", err)
	}
	if err := Cleanup(filepath.Dir(pinned)); err == nil || !strings.Contains(err.Error(), "root of a bpffs mount") {
		t.Errorf("Cleanup of a bpffs mount's root: %v, want a refusal", err)
	}
}
