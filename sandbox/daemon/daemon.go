package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mcpjail/mcpjail/bpf"
	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/cgroup"
)

// delegateLeaf is the cgroup the daemon moves into, below its own (the
// unit's), so that jails beside it may have controllers (cgroup.Delegate).
const delegateLeaf = "supervisor"

// warmLeaf is the empty cgroup beside it that holds a standing attachment
// of each jail program (bpf.Loader.KeepHooksWarm). Prefixed, unlike the
// leaf: a daemon in the v2 root (outside systemd) makes it there too, where
// another program's cgroup of a plainer name could exist.
const warmLeaf = "mcpjail-hooks-warm"

// Options are what `mcpjail daemon` passes besides the config.
type Options struct {
	Version string
	Logger  *slog.Logger
	// Notify reports readiness, stopping and watchdog pings (sd_notify);
	// nil when not under systemd.
	Notify func(state string)
	// WatchdogInterval is systemd's WatchdogSec (WATCHDOG_USEC); 0: none.
	WatchdogInterval time.Duration
	// Metrics receives counters; nil for none.
	Metrics MetricsSink
	// Audit receives every event as a JSON line; nil for none.
	Audit EventWriter
}

// MetricsSink is the part of the metrics the daemon feeds.
type MetricsSink interface {
	JailStarted(server string)
	JailStopped(server string)
	Event(e audit.Event)
	SetLost(n uint64)
	Reload(err error)
	SetEgressBytes(server, instance string, n uint64)
	DropJail(server, instance string)
}

// EventWriter is the audit file.
type EventWriter interface {
	WriteEvent(e audit.Event) error
}

// Daemon serves the socket and owns the jails it built.
type Daemon struct {
	cfg     Config
	opts    Options
	log     *slog.Logger
	auth    *authorizer
	loader  *bpf.Loader
	hub     *hub
	state   *stateDir
	started time.Time
	// cgroupBase is where jails are created (cgroup.Delegate).
	cgroupBase *cgroup.Base

	mu       sync.Mutex
	jails    map[string]*entry // by instance
	declared []*DeclaredStatus
	// smallReplies warns once that replies over the default socket buffer
	// cannot be sent (no CAP_NET_ADMIN for SO_SNDBUFFORCE).
	smallReplies sync.Once
}

// New checks the configuration; Run does the work.
func New(cfg Config, opts Options) (*Daemon, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	auth, err := newAuthorizer(cfg)
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, opts: opts, log: opts.Logger, auth: auth, jails: map[string]*entry{},
		state: &stateDir{dir: cfg.StateDir}}
	d.hub = newHub(opts.Audit, opts.Metrics, opts.Logger)
	return d, nil
}

// Run loads (or adopts) the pinned eBPF layer, adopts the jails a previous
// daemon left running, and serves the socket until ctx ends. On return the
// jails it still holds keep running and stay enforced: their programs and
// maps are pinned, and a restarted daemon adopts them.
func (d *Daemon) Run(ctx context.Context) error {
	d.started = time.Now()
	var err error
	if err = os.MkdirAll(d.cfg.StateDir, stateDirPermissions); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if cgroup.DetectMode() != cgroup.ModeV2 && cgroup.DetectMode() != cgroup.ModeHybrid {
		return fmt.Errorf("the daemon needs a cgroup v2 hierarchy (found %s)", cgroup.DetectMode())
	}
	// Jails are cgroups beside the daemon's own leaf (systemd's Delegate=yes).
	if d.cgroupBase, err = cgroup.Delegate(delegateLeaf); err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	loader, err := bpf.LoadPinned(ctx, d.log, d.cfg.PinDir)
	if err != nil {
		return fmt.Errorf("eBPF layer: %w", err)
	}
	d.loader = loader
	defer loader.Close() // pinned: closing detaches nothing
	go d.hub.forwardUnrouted(loader.Events())
	if warm, err := d.keepHooksWarm(); err != nil {
		// Only jails' start and end are slower: their attachments switch
		// the kernel's cgroup hooks on and off.
		d.log.Warn("no standing attachment of the jail programs", "err", err)
	} else {
		defer warm.Close()
	}
	if err := d.adopt(); err != nil {
		return err
	}
	ln, err := d.listen()
	if err != nil {
		return err
	}
	stopWatchdog := d.watchdog(ctx)
	defer stopWatchdog()
	d.startDeclared(ctx)
	d.notify("READY=1\nSTATUS=serving " + d.cfg.Socket)
	d.log.Info("mcpjail daemon ready", "socket", d.cfg.Socket, "pin_dir", d.cfg.PinDir, "jails_adopted", len(d.jails))
	go func() {
		<-ctx.Done()
		d.notify("STOPPING=1")
		ln.Close()
	}()
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			d.log.Error("accept", "err", err)
			time.Sleep(100 * time.Millisecond) // e.g. EMFILE: do not spin
			continue
		}
		go d.serve(ctx, c)
	}
	// Sessions are not waited for: a stopping daemon leaves its jails
	// running and enforced (pinned), and the next daemon adopts them.
	d.log.Info("mcpjail daemon stopping; running jails stay enforced", "jails", d.jailCount())
	return nil
}

// listen creates the socket, owned by root and the allowed group.
// A stale socket from a crashed daemon is replaced; a live one is an error.
func (d *Daemon) listen() (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(d.cfg.Socket), 0o755); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if c, err := net.Dial("unixpacket", d.cfg.Socket); err == nil {
		c.Close()
		return nil, fmt.Errorf("another daemon is serving %s", d.cfg.Socket)
	}
	if err := os.Remove(d.cfg.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: d.cfg.Socket, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", d.cfg.Socket, err)
	}
	gid := 0
	if d.auth.gid >= 0 {
		gid = d.auth.gid
	}
	if err := os.Chown(d.cfg.Socket, 0, gid); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chown socket: %w", err)
	}
	if err := os.Chmod(d.cfg.Socket, socketPermissions); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod socket: %w", err)
	}
	return ln, nil
}

func (d *Daemon) notify(state string) {
	if d.opts.Notify != nil {
		d.opts.Notify(state)
	}
}

// watchdog pings systemd at half the unit's WatchdogSec, from the loop
// that also refreshes the lost-records gauge, so a wedged daemon is
// restarted.
func (d *Daemon) watchdog(ctx context.Context) func() {
	stop := make(chan struct{})
	every := lostRefresh
	if w := d.opts.WatchdogInterval; w > 0 && w/2 < every {
		every = w / 2
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if d.opts.WatchdogInterval > 0 {
					d.notify("WATCHDOG=1")
				}
				d.refreshMetrics()
			}
		}
	}()
	return func() { close(stop) }
}

// refreshMetrics reads the kernel's counters into the metrics: records
// lost, and each jail's bytes in its egress-budget window.
func (d *Daemon) refreshMetrics() {
	m := d.opts.Metrics
	if m == nil {
		return
	}
	if n, err := d.loader.Lost(); err == nil {
		m.SetLost(n)
	}
	for _, e := range d.entries() {
		if n, ok := e.jail.EgressBytes(); ok {
			m.SetEgressBytes(e.rec.Server.Name, e.rec.Server.Instance, n)
		}
	}
}

// lostRefresh is how often the kernel's counters are read into the metrics.
const lostRefresh = 5 * time.Second

func (d *Daemon) jailCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.jails)
}

// entries is a snapshot of the jails the daemon holds.
func (d *Daemon) entries() []*entry {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*entry, 0, len(d.jails))
	for _, e := range d.jails {
		out = append(out, e)
	}
	return out
}

// keepHooksWarm holds the jail programs attached to the empty warmLeaf
// cgroup while the daemon runs.
func (d *Daemon) keepHooksWarm() (io.Closer, error) {
	path, err := d.cgroupBase.Sibling(warmLeaf)
	if err != nil {
		return nil, err
	}
	return d.loader.KeepHooksWarm(path)
}
