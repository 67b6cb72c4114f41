package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// Modes of the rotated audit log: its lines name paths and addresses a
// server touched, so only root reads them unless the operator widens it.
const (
	rotatingFileMode fs.FileMode = 0o600
	rotatingDirMode  fs.FileMode = 0o750
)

// RotatingFile is a JSON-lines audit file rotated by size: when the next
// line would make path larger than maxBytes, path becomes path.1, path.1
// becomes path.2 and so on up to path.keep, and the oldest is removed.
// Files only ever hold whole lines. It is safe for concurrent use.
type RotatingFile struct {
	mu       sync.Mutex
	path     string
	maxBytes int64
	keep     int
	f        *os.File // nil once closed
	size     int64    // bytes in f, from its size at open plus what was written
}

// OpenRotating opens path for append, creating it 0600 (and its directory
// 0750) when missing. keep is how many rotated files to keep (0: none).
func OpenRotating(path string, maxBytes int64, keep int) (*RotatingFile, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("audit log %s: maximum size %d must be positive", path, maxBytes)
	}
	if keep < 0 {
		return nil, fmt.Errorf("audit log %s: number of rotated files to keep %d must not be negative", path, keep)
	}
	if err := os.MkdirAll(filepath.Dir(path), rotatingDirMode); err != nil {
		return nil, fmt.Errorf("create audit log directory %s: %w", filepath.Dir(path), err)
	}
	r := &RotatingFile{path: path, maxBytes: maxBytes, keep: keep}
	f, size, err := r.open()
	if err != nil {
		return nil, err
	}
	r.f, r.size = f, size
	return r, nil
}

// open opens r.path for append and returns its current size. Only a regular
// file is accepted: rotating would otherwise rename a device or a FIFO.
// O_NOFOLLOW keeps a planted symlink from redirecting a root daemon's writes;
// O_NONBLOCK keeps a FIFO without a reader from blocking the open (it has
// no effect on a regular file).
func (r *RotatingFile) open() (*os.File, int64, error) {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, rotatingFileMode)
	if err != nil {
		return nil, 0, fmt.Errorf("open audit log %s: %w", r.path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("stat audit log %s: %w", r.path, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("audit log %s is a %s, not a regular file", r.path, fi.Mode().Type())
	}
	return f, fi.Size(), nil
}

// WriteEvent writes e as one JSON line, rotating first when the line would
// take the file past its maximum size. A line longer than the maximum is
// written whole to a fresh file rather than cut. On error nothing of the
// line is left in the file and the error is returned.
func (r *RotatingFile) WriteEvent(e Event) error {
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit log %s: encode event: %w", r.path, err)
	}
	line = append(line, '\n')

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return fmt.Errorf("audit log %s: write: %w", r.path, os.ErrClosed)
	}
	if r.size > 0 && r.size+int64(len(line)) > r.maxBytes {
		if err := r.rotate(); err != nil {
			return err
		}
	}
	n, err := r.f.Write(line)
	if err != nil {
		// A short write (ENOSPC, EIO) would leave half a line that breaks
		// every reader of the file: cut it off again.
		if n > 0 {
			if terr := r.f.Truncate(r.size); terr != nil {
				return fmt.Errorf("audit log %s: write: %w (and removing the partial line failed: %v)", r.path, err, terr)
			}
		}
		return fmt.Errorf("audit log %s: write: %w", r.path, err)
	}
	r.size += int64(n)
	return nil
}

// rotate shifts path.i to path.i+1, path to path.1, and opens a new path.
// The old file stays open until the new one is, so a failure leaves the
// writer usable and a later write retries the rotation. r.mu is held.
func (r *RotatingFile) rotate() error {
	if r.keep == 0 {
		if err := removeIfExists(r.path); err != nil {
			return fmt.Errorf("rotate audit log: %w", err)
		}
	} else {
		if err := removeIfExists(r.rotated(r.keep)); err != nil {
			return fmt.Errorf("rotate audit log: %w", err)
		}
		for i := r.keep - 1; i >= 1; i-- {
			if err := renameIfExists(r.rotated(i), r.rotated(i+1)); err != nil {
				return fmt.Errorf("rotate audit log: %w", err)
			}
		}
		if err := renameIfExists(r.path, r.rotated(1)); err != nil {
			return fmt.Errorf("rotate audit log: %w", err)
		}
	}
	f, size, err := r.open()
	if err != nil {
		return fmt.Errorf("rotate audit log: %w", err)
	}
	old := r.f
	r.f, r.size = f, size
	if err := old.Close(); err != nil {
		return fmt.Errorf("rotate audit log: close the rotated file: %w", err)
	}
	return nil
}

// rotated is the name of the i-th rotated file, path.i.
func (r *RotatingFile) rotated(i int) string { return r.path + "." + strconv.Itoa(i) }

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func renameIfExists(from, to string) error {
	if err := os.Rename(from, to); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Close closes the file; later writes return an error wrapping os.ErrClosed.
func (r *RotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	if err != nil {
		return fmt.Errorf("close audit log %s: %w", r.path, err)
	}
	return nil
}
