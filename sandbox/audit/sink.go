package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// Log writes events to a human stream (stderr) and, optionally, a JSON-lines
// file. It is safe for concurrent use.
type Log struct {
	mu     sync.Mutex
	server Server
	human  io.Writer
	jsonl  *os.File
	now    func() time.Time
	// repeats folds identical kernel events (ratelimit.go).
	repeats map[repeatKey]*pendingRepeat
	// sinks receive every written event (after folding), e.g. the daemon's
	// audit file, metrics and its clients.
	sinks []func(Event)
}

// Open returns a Log for one server. human may be nil (no human lines);
// jsonPath may be empty (no JSON log). The JSON log is opened for append and
// created 0600: it names paths and addresses a server touched. As for the
// daemon's file (rotate.go), a symlink at the path is refused (O_NOFOLLOW):
// one planted in /tmp must not redirect root's writes.
func Open(server Server, human io.Writer, jsonPath string) (*Log, error) {
	l := &Log{server: server, human: human, now: time.Now, repeats: map[repeatKey]*pendingRepeat{}}
	if jsonPath != "" {
		f, err := os.OpenFile(jsonPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open audit log %s: %w", jsonPath, err)
		}
		l.jsonl = f
	}
	return l, nil
}

// Emit fills in time and server when unset and writes the event everywhere.
// A failure to write the JSON log is reported on the human stream: audit
// records are never dropped silently.
func (l *Log) Emit(e Event) {
	if l == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	if e.Server == (Server{}) {
		e.Server = l.server
	}
	if e.Action == "" {
		e.Action = ActionNone
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fold(e) {
		return
	}
	l.write(e)
}

// AddSink makes f receive every event this log writes, folded repeats
// included, in order. f runs with the log's lock held and must not block
// for long or call back into the log.
func (l *Log) AddSink(f func(Event)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sinks = append(l.sinks, f)
}

// Forward writes an event that another log already stamped and folded (the
// daemon's, relayed to its client) as it is, without folding it again.
func (l *Log) Forward(e Event) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.write(e)
}

// write writes one event everywhere; l.mu is held.
func (l *Log) write(e Event) {
	for _, f := range l.sinks {
		f(e)
	}
	if l.human != nil {
		fmt.Fprintf(l.human, "mcpjail: %s\n", e.Line())
	}
	if l.jsonl != nil {
		b, err := json.Marshal(e)
		if err == nil {
			b = append(b, '\n')
			_, err = l.jsonl.Write(b)
		}
		if err != nil && l.human != nil {
			fmt.Fprintf(l.human, "mcpjail: audit log write failed: %v\n", err)
		}
	}
}

// Server is the identity stamped on every event.
func (l *Log) Server() Server { return l.server }

// Close writes the pending repeat counts and closes the JSON log.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	l.flushAllRepeats()
	if l.jsonl == nil {
		return nil
	}
	return l.jsonl.Close()
}
