package daemon

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mcpjail/mcpjail/bpf"
	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// backlogSize is how many recent events `mcpjail events` shows.
const backlogSize = 1024

// subscriberQueue is how far a follower may fall behind before it is cut
// off with a notice (it never blocks the jails' event paths).
const subscriberQueue = 4096

// hub fans every event out: the audit file, the metrics, the backlog and
// the followers of `mcpjail events --follow`.
type hub struct {
	audit   EventWriter
	metrics MetricsSink
	log     *slog.Logger

	mu      sync.Mutex
	backlog []ownedEvent // ring, oldest first once full
	next    int
	subs    map[*subscriber]struct{}
}

// ownedEvent is an event with the uid of the user whose jail it is about;
// hostOwned for the daemon's own and unknown cgroups' events.
type ownedEvent struct {
	audit.Event
	uid int
}

const hostOwned = -1

// view is what one reader may see: a user sees only their own jails'
// events (paths, argv and addresses are theirs), root sees everything.
type view struct {
	server string // "" for all
	uid    int    // hostOwned: every event (root)
}

func (v view) sees(e ownedEvent) bool {
	return (v.server == "" || v.server == e.Server.Name) && (v.uid == hostOwned || v.uid == e.uid)
}

type subscriber struct {
	view
	ch chan audit.Event
	// overflowed is closed when the follower fell too far behind.
	overflowed chan struct{}
	once       sync.Once
}

func newHub(w EventWriter, m MetricsSink, log *slog.Logger) *hub {
	return &hub{audit: w, metrics: m, log: log, subs: map[*subscriber]struct{}{}}
}

// publish records one event everywhere. A failed audit write is logged:
// the event still reaches the backlog, the followers and the journal.
func (h *hub) publish(e audit.Event, uid int) {
	if h.audit != nil {
		if err := h.audit.WriteEvent(e); err != nil {
			h.log.Error("audit log write failed", "err", err, "event", e.Line())
		}
	}
	if h.metrics != nil {
		h.metrics.Event(e)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	oe := ownedEvent{e, uid}
	if len(h.backlog) < backlogSize {
		h.backlog = append(h.backlog, oe)
	} else {
		h.backlog[h.next] = oe
		h.next = (h.next + 1) % backlogSize
	}
	for s := range h.subs {
		if !s.sees(oe) {
			continue
		}
		select {
		case s.ch <- e:
		default:
			s.once.Do(func() { close(s.overflowed) })
		}
	}
}

// recentLocked returns the backlog v sees, oldest first; h.mu is held.
func (h *hub) recentLocked(v view) []audit.Event {
	out := make([]audit.Event, 0, len(h.backlog))
	for i := range h.backlog {
		e := h.backlog[(h.next+i)%len(h.backlog)]
		if v.sees(e) {
			out = append(out, e.Event)
		}
	}
	return out
}

// subscribe returns the backlog and a follower registered atomically with
// it, so that no event falls between the two.
func (h *hub) subscribe(v view) ([]audit.Event, *subscriber) {
	s := &subscriber{view: v, ch: make(chan audit.Event, subscriberQueue), overflowed: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[s] = struct{}{}
	return h.recentLocked(v), s
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// forwardUnrouted publishes kernel events of cgroups that no jail of this
// daemon holds (an orphaned pinned registration): they are still audited.
func (h *hub) forwardUnrouted(events <-chan bpf.Event) {
	for ev := range events {
		e := ev.Audit(time.Now())
		e.Server = audit.Server{Name: "unknown", Instance: fmt.Sprintf("cgroup-%d", ev.CgroupID)}
		h.publish(e, hostOwned)
	}
}
