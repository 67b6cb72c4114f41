package bpf

import (
	"context"
	"errors"
	"fmt"
)

// errReaderStopped is Sync's error when the event reader is gone.
var errReaderStopped = errors.New("the event reader has stopped")

// Sync returns once every record that was in the ring buffer when it was
// called has been decoded and queued on its channel (its jail's Events, or
// the loader's). A jail's last records (the violation that got it killed)
// must reach the audit log before its exit event; the reader otherwise
// delivers them on its own schedule.
func (l *Loader) Sync(ctx context.Context) error {
	result := make(chan bool, 1)
	l.addFlushWaiter(func(passed bool) { result <- passed })
	if err := l.reader.Flush(); err != nil {
		return fmt.Errorf("flush event ring buffer: %w", err)
	}
	select {
	case passed := <-result:
		if !passed {
			return fmt.Errorf("flush event ring buffer: %w", errReaderStopped)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("flush event ring buffer: %w", ctx.Err())
	}
}
