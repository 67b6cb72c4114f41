package bpf

import (
	"context"
	"fmt"
)

// Sync returns once every record that was in the ring buffer when it was
// called has been decoded and queued on Events. A jail's last records (the
// violation that got it killed) must reach the audit log before its exit
// event; the reader otherwise delivers them on its own schedule.
func (l *Loader) Sync(ctx context.Context) error {
	select {
	case <-l.flushed: // a stale signal from an earlier, timed-out Sync
	default:
	}
	if err := l.reader.Flush(); err != nil {
		return fmt.Errorf("flush event ring buffer: %w", err)
	}
	select {
	case <-l.flushed:
		return nil
	case <-l.done:
		return fmt.Errorf("flush event ring buffer: the reader has stopped")
	case <-ctx.Done():
		return fmt.Errorf("flush event ring buffer: %w", ctx.Err())
	}
}
