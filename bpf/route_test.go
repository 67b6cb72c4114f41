package bpf

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
)

// TestFlushWaiterNeedsTwoFlushPoints: a waiter is only satisfied by the
// second flush point counted after it was added; the first may come from a
// drain that started before it (see addFlushWaiter).
func TestFlushWaiterNeedsTwoFlushPoints(t *testing.T) {
	l := makeLoader(nil)
	var got []bool
	l.addFlushWaiter(func(passed bool) { got = append(got, passed) })
	if more := l.passFlush(); !more || len(got) != 0 {
		t.Fatalf("after one flush point: ran %v, more %v; want not run, more", got, more)
	}
	l.addFlushWaiter(func(passed bool) { got = append(got, passed) }) // added between the two
	if more := l.passFlush(); !more || !slices.Equal(got, []bool{true}) {
		t.Fatalf("after two flush points: ran %v, more %v; want the first waiter only, more", got, more)
	}
	if more := l.passFlush(); more || !slices.Equal(got, []bool{true, true}) {
		t.Fatalf("after three flush points: ran %v, more %v; want both, no more", got, more)
	}
}

// TestDestination: a registered jail's events go to its channel, an adopted
// one's to the loader's until it is claimed, an unknown cgroup's to the loader's.
func TestDestination(t *testing.T) {
	l := makeLoader(nil)
	registered := l.addRoute(10, true)
	adopted := l.addRoute(20, false)
	if l.destination(10) != registered.ch {
		t.Error("registered jail's events do not go to its channel")
	}
	if l.destination(20) != l.events {
		t.Error("unclaimed adopted jail's events do not go to the loader's channel")
	}
	if l.destination(30) != l.events {
		t.Error("unknown cgroup's events do not go to the loader's channel")
	}
	l.claim(adopted)
	if l.destination(20) != adopted.ch {
		t.Error("claimed adopted jail's events do not go to its channel")
	}
}

// TestRetiredRouteClosesAfterFlush: a closed jail's channel stays the
// destination of its cgroup until the flush points pass, then is closed;
// a jail registered again for the cgroup meanwhile keeps its own route.
func TestRetiredRouteClosesAfterFlush(t *testing.T) {
	l := makeLoader(nil)
	old := l.addRoute(10, true)
	l.addFlushWaiter(func(bool) { l.retire(10, old) })
	if l.destination(10) != old.ch {
		t.Fatal("retiring route stopped receiving before the flush points")
	}
	again := l.addRoute(10, true)
	l.passFlush()
	l.passFlush()
	if _, open := <-old.ch; open {
		t.Error("retired route's channel still open")
	}
	if l.destination(10) != again.ch {
		t.Error("the re-registered jail lost its route")
	}
}

// TestStopRoutesClosesEverything: when the reader returns, every channel
// is closed and every waiter told that its flush point never came.
func TestStopRoutesClosesEverything(t *testing.T) {
	l := makeLoader(nil)
	a, b := l.addRoute(1, true), l.addRoute(2, false)
	var got []bool
	l.addFlushWaiter(func(passed bool) { got = append(got, passed) })
	l.stopRoutes()
	for _, ch := range []chan Event{a.ch, b.ch, l.events} {
		if _, open := <-ch; open {
			t.Error("a channel is still open")
		}
	}
	if !slices.Equal(got, []bool{false}) {
		t.Errorf("waiter ran %v, want [false]", got)
	}
	// Later routes and waiters see a stopped reader at once.
	if _, open := <-l.addRoute(3, true).ch; open {
		t.Error("route added after the stop is open")
	}
	l.addFlushWaiter(func(passed bool) { got = append(got, passed) })
	if !slices.Equal(got, []bool{false, false}) {
		t.Errorf("waiter added after the stop ran %v", got)
	}
}

func TestStampRoundTrip(t *testing.T) {
	s := stamp{build: buildHash(), layout: pinLayout, flags: stampUnixMissing, globalLinks: 19}
	got, err := decodeStamp(s.encode())
	if err != nil || got != s {
		t.Fatalf("decode(encode(%+v)) = %+v, %v", s, got, err)
	}
	if _, err := decodeStamp(make([]byte, stampSize-1)); err == nil {
		t.Error("a short stamp decoded")
	}
}

// TestStampCoversEveryObject: every eBPF object of the package is part of
// the build hash, so that a changed program is never adopted by mistake.
func TestStampCoversEveryObject(t *testing.T) {
	files, err := filepath.Glob("*_bpfel.o")
	if err != nil || len(files) == 0 {
		t.Fatalf("no eBPF objects found (%v)", err)
	}
	embedded := embeddedObjects()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(embedded, func(e []byte) bool { return bytes.Equal(e, b) }) {
			t.Errorf("%s is not in embeddedObjects (pin.go): add its bpf2go bytes variable", f)
		}
	}
	if len(embedded) != len(files) {
		t.Errorf("embeddedObjects has %d objects, the package %d", len(embedded), len(files))
	}
}

// TestObjectFieldsCoverSpecs: pinning and adoption walk the loader's object
// structs; every program and map of every object must be among them.
func TestObjectFieldsCoverSpecs(t *testing.T) {
	l := makeLoader(nil)
	l.watch = &watcher{}
	progs, mps, err := objectFields(l.objectRoots())
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*_bpfel.o")
	if err != nil || len(files) == 0 {
		t.Fatalf("no eBPF objects found (%v)", err)
	}
	for _, f := range files {
		spec, err := ebpf.LoadCollectionSpec(f)
		if err != nil {
			t.Fatal(err)
		}
		for name := range spec.Programs {
			if progs[name] == nil {
				t.Errorf("program %s is in no object struct: it would be neither pinned nor adopted", name)
			}
		}
		for name, m := range spec.Maps {
			if mps[name] == nil && !isDataSection(name) {
				t.Errorf("map %s (%v) is in no object struct", name, m.Type)
			}
		}
	}
	if len(mps["mcpjail_events"]) < 2 {
		t.Errorf("the shared event map appears %d times; every object that writes it should hold it", len(mps["mcpjail_events"]))
	}
}

// isDataSection tells the .bss/.rodata maps of the record-type anchors,
// which the loader never creates (see kernelObjects).
func isDataSection(name string) bool { return len(name) > 0 && name[0] == '.' }
