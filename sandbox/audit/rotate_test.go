package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// numbered is an event whose JSON line has the same length for every i of
// the same number of digits, so tests can size files in whole lines.
func numbered(i int) Event {
	return Event{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Server: Server{Name: "s", Instance: "i"},
		Kind: KindOpen, Target: fmt.Sprintf("/tmp/f%04d", i), Verdict: VerdictDeny, Layer: LayerLandlock, Action: ActionNone}
}

func lineLen(t *testing.T, e Event) int64 {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(b) + 1)
}

// targets reads a JSON-lines file strictly: every line must be a whole
// event. It returns the targets in order; a missing file is nil.
func targets(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("%s does not end with a newline: a partial line was written", path)
	}
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(nil, len(b)+1)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s: line %q is not a whole event: %v", path, sc.Text(), err)
		}
		out = append(out, e.Target)
	}
	return out
}

func writeAll(t *testing.T, r *RotatingFile, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := r.WriteEvent(numbered(i)); err != nil {
			t.Fatalf("WriteEvent %d: %v", i, err)
		}
	}
}

func TestRotatingFileModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log", "mcpjail", "audit.jsonl")
	r, err := OpenRotating(path, 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for p, want := range map[string]os.FileMode{path: rotatingFileMode, filepath.Dir(path): rotatingDirMode | os.ModeDir} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode(), want)
		}
	}
}

func TestRotationBoundaries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	perLine := lineLen(t, numbered(0))
	r, err := OpenRotating(path, 2*perLine, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	writeAll(t, r, 0, 2) // exactly maxBytes: no rotation yet
	if got := targets(t, path); len(got) != 2 || targets(t, path+".1") != nil {
		t.Fatalf("after 2 lines of a 2-line maximum: %v in the file, %v rotated; want 2 and none", got, targets(t, path+".1"))
	}
	writeAll(t, r, 2, 3) // one byte more would not fit: rotate first
	if got, old := targets(t, path), targets(t, path+".1"); len(got) != 1 || got[0] != numbered(2).Target || len(old) != 2 {
		t.Fatalf("after the 3rd line: file %v, .1 %v; want the 3rd line alone and the first two rotated", got, old)
	}
	fi, err := os.Stat(path + ".1")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 2*perLine || fi.Mode() != rotatingFileMode {
		t.Errorf("rotated file: %d bytes mode %v, want %d bytes mode %v", fi.Size(), fi.Mode(), 2*perLine, rotatingFileMode)
	}
}

func TestRotationKeepsNewestFiles(t *testing.T) {
	for _, keep := range []int{0, 1, 3} {
		t.Run(fmt.Sprint("keep", keep), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			r, err := OpenRotating(path, lineLen(t, numbered(0)), keep) // one line a file
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			const lines = 6
			writeAll(t, r, 0, lines)
			// path holds the newest line, path.i the i-th newest before it.
			for i := 0; i <= lines; i++ {
				name := path
				if i > 0 {
					name = fmt.Sprintf("%s.%d", path, i)
				}
				got := targets(t, name)
				if i > keep {
					if got != nil {
						t.Errorf("%s exists with %v, want only %d rotated files", name, got, keep)
					}
					continue
				}
				if want := numbered(lines - 1 - i).Target; len(got) != 1 || got[0] != want {
					t.Errorf("%s = %v, want [%s]", name, got, want)
				}
			}
		})
	}
}

func TestOversizedLineIsWrittenWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	r, err := OpenRotating(path, lineLen(t, numbered(0))/2, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	writeAll(t, r, 0, 2)
	if got, old := targets(t, path), targets(t, path+".1"); len(got) != 1 || len(old) != 1 {
		t.Errorf("lines larger than the maximum: file %v, .1 %v; want one whole line in each", got, old)
	}
}

func TestConcurrentWritersWriteWholeLines(t *testing.T) {
	const writers, each = 8, 200
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	perLine := lineLen(t, numbered(0))
	const linesPerFile = 10
	keep := writers*each/linesPerFile + 1 // room for every line: none may be lost
	r, err := OpenRotating(path, linesPerFile*perLine, keep)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := r.WriteEvent(numbered(w*each + i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	files, _ := filepath.Glob(path + "*")
	for _, f := range files {
		got := targets(t, f)
		if len(got) > linesPerFile {
			t.Errorf("%s has %d lines, more than the %d that fit", f, len(got), linesPerFile)
		}
		for _, tg := range got {
			seen[tg]++
		}
	}
	for i := range writers * each {
		if n := seen[numbered(i).Target]; n != 1 {
			t.Errorf("event %d written %d times, want once", i, n)
		}
	}
}

func TestReopenAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	perLine := lineLen(t, numbered(0))
	r, err := OpenRotating(path, 3*perLine, 1)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, r, 0, 2)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteEvent(numbered(9)); !errors.Is(err, os.ErrClosed) {
		t.Errorf("WriteEvent after Close = %v, want os.ErrClosed", err)
	}
	r, err = OpenRotating(path, 3*perLine, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	writeAll(t, r, 2, 4) // the reopened size counts: the 4th line rotates
	if got, old := targets(t, path), targets(t, path+".1"); len(got) != 1 || len(old) != 3 || old[0] != numbered(0).Target {
		t.Errorf("after reopen: file %v, .1 %v; want the 4th line, and the first three rotated", got, old)
	}
}

func TestRotationFailureIsReturned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	perLine := lineLen(t, numbered(0))
	// A non-empty directory where path.1 goes cannot be removed or replaced.
	if err := os.MkdirAll(filepath.Join(path+".1", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRotating(path, perLine, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	writeAll(t, r, 0, 1)
	err = r.WriteEvent(numbered(1))
	if err == nil || !strings.Contains(err.Error(), "rotate audit log") {
		t.Fatalf("WriteEvent when rotation cannot happen = %v, want the rotation error", err)
	}
	if got := targets(t, path); len(got) != 1 {
		t.Errorf("file after a failed rotation = %v, want the first line only", got)
	}
	if err := os.RemoveAll(path + ".1"); err != nil {
		t.Fatal(err)
	}
	writeAll(t, r, 1, 2) // the writer is still usable: the next write rotates
	if got, old := targets(t, path), targets(t, path+".1"); len(got) != 1 || len(old) != 1 {
		t.Errorf("after recovery: file %v, .1 %v; want one line each", got, old)
	}
}

func TestOpenRotatingRefuses(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "link.jsonl")
	if err := os.Symlink(filepath.Join(dir, "target"), link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.jsonl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path string
		max        int64
		keep       int
	}{
		{"symlink", link, 1 << 20, 1}, {"fifo", fifo, 1 << 20, 1},
		{"zero size", filepath.Join(dir, "a"), 0, 1}, {"negative keep", filepath.Join(dir, "b"), 1 << 20, -1},
	} {
		if r, err := OpenRotating(c.path, c.max, c.keep); err == nil {
			r.Close()
			t.Errorf("%s: OpenRotating succeeded, want an error", c.name)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "target")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the symlink's target was created: %v", err)
	}
}

// A full filesystem is a real write error: it is returned, and the line
// the kernel took only part of is cut off again.
func TestWriteErrorLeavesNoPartialLine(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and the test needs root to mount a small tmpfs")
		}
		t.Skip("the test needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	const fsBytes = 16 << 10
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", fsBytes)); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	path := filepath.Join(dir, "audit.jsonl")
	r, err := OpenRotating(path, 1<<30, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Bounded: the filesystem holds fsBytes, so it is full well before this many lines.
	maxLines := int(2 * fsBytes / lineLen(t, numbered(0)))
	written := 0
	for ; written < maxLines; written++ {
		if err = r.WriteEvent(numbered(written)); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("after %d lines on a %d-byte filesystem: WriteEvent = %v, want ENOSPC", written, fsBytes, err)
	}
	if got := targets(t, path); len(got) != written {
		t.Errorf("file holds %d whole lines, want the %d that were written without error", len(got), written)
	}
}
