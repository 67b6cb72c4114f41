package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox"
	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/cgroup"
	"github.com/mcpjail/mcpjail/sandbox/daemon/api"
)

// session is one client connection.
type session struct {
	d    *Daemon
	c    *conn
	peer Peer
}

func refusal(code int, format string, args ...any) *Reply {
	return &Reply{V: ProtocolVersion, Error: &ReplyError{Code: code, Message: fmt.Sprintf(format, args...)}}
}

// serve authorizes the peer and dispatches on its first request.
func (d *Daemon) serve(ctx context.Context, uc *net.UnixConn) {
	defer uc.Close()
	s := &session{d: d, c: api.NewConn(uc)}
	peer, err := peerOf(uc)
	if err != nil {
		d.log.Error("refused connection", "err", err)
		return
	}
	s.peer = peer
	if err := s.c.AllowLargeMessages(); err != nil {
		d.smallReplies.Do(func() {
			d.log.Warn("replies larger than the default socket buffer (a status of several hundred jails) cannot be sent", "err", err)
		})
	}
	// The daemon's own children are the declared servers' runs.
	if ok, why := d.authorizer().allowed(peer); !ok && !isChildOfDaemon(peer) {
		d.log.Warn("refused connection", "uid", peer.UID, "pid", peer.PID, "reason", why)
		_ = s.c.Send(refusal(sandbox.ExitRefused, "mcpjail daemon: permission denied: %s", why))
		// Read the client's request before closing: closing with unread
		// data resets the connection, and the client would lose the reason.
		_ = uc.SetReadDeadline(time.Now().Add(time.Second))
		var ignored Request
		fs, _ := s.c.Recv(&ignored)
		closeFiles(fs)
		return
	}
	var req Request
	files, err := s.c.Recv(&req)
	closeFiles(files)
	if err != nil {
		d.log.Debug("connection ended before a request", "uid", peer.UID, "err", err)
		return
	}
	if req.V != ProtocolVersion {
		_ = s.c.Send(refusal(sandbox.ExitUsage, "mcpjail daemon speaks protocol version %d, the client %d: use the same mcpjail release", ProtocolVersion, req.V))
		return
	}
	switch {
	case req.Op == OpPrepare && req.Prepare != nil:
		s.run(ctx, req.Prepare)
	case req.Op == OpStatus:
		_ = s.c.Send(&Reply{V: ProtocolVersion, Status: d.status(s.ownerFilter())})
	case req.Op == OpEvents:
		er := req.Events
		if er == nil {
			er = &EventsRequest{}
		}
		s.events(ctx, er)
	default:
		_ = s.c.Send(refusal(sandbox.ExitUsage, "unknown request %q", req.Op))
	}
}

// run is the life of one unprivileged run: the policy is compiled here from
// the daemon's own profile, then the client's child is moved into the jail
// before it may start the server, and the jail lives until the client
// releases it or goes away.
func (s *session) run(ctx context.Context, pr *PrepareRequest) {
	d := s.d
	rec, err := d.compile(s.peer, pr)
	if err != nil {
		var re *ReplyError
		if !errors.As(err, &re) {
			re = &ReplyError{Code: sandbox.ExitRefused, Message: err.Error()}
		}
		d.log.Warn("refused run", "uid", s.peer.UID, "profile", pr.Profile, "err", re.Message)
		_ = s.c.Send(&Reply{V: ProtocolVersion, Error: re})
		return
	}
	// The run's TMPDIR is the peer's (compile checked it); it goes when the
	// session ends, after the jail: nothing of the run writes to it then.
	removeTmp := sync.OnceFunc(func() { removeRunTmp(rec, d.log) })
	defer removeTmp()
	if err := s.c.Send(&Reply{V: ProtocolVersion, Prepared: &Prepared{Server: rec.Server, Policy: rec.Policy, Missing: d.loader.Missing()}}); err != nil {
		return
	}
	// The jail is built while the client starts its init step, off the
	// run's start-up path; it stays empty until the attach moves that
	// process in.
	built := make(chan builtJail, 1)
	go func() {
		t0 := time.Now()
		e, err := d.build(s, rec, pr.AllowDegraded)
		d.log.Debug("jail built", "server", rec.Server.Name, "instance", rec.Server.Instance, "took", time.Since(t0))
		built <- builtJail{e, err}
	}()
	var attach Request
	files, err := s.c.Recv(&attach)
	b := <-built
	if b.err != nil {
		closeFiles(files)
		d.log.Warn("refused attach", "uid", s.peer.UID, "server", rec.Server.Name, "err", b.err)
		_ = s.c.Send(refusal(sandbox.ExitRefused, "%v", b.err))
		return
	}
	e := b.e
	defer d.release(e)
	if err != nil || attach.Op != OpAttach {
		closeFiles(files)
		return // the client gave up (e.g. a local layer is missing)
	}
	defer closeFiles(files)
	if len(files) != 1 && len(files) != 2 {
		_ = s.c.Send(refusal(sandbox.ExitRefused, "attach needs one or two pidfds (the init step, then its PID 2), got %d descriptors", len(files)))
		return
	}
	t0 := time.Now()
	err = d.move(s, e, files)
	d.log.Debug("jail attached", "server", rec.Server.Name, "instance", rec.Server.Instance, "took", time.Since(t0))
	if err != nil {
		d.log.Warn("refused attach", "uid", s.peer.UID, "server", rec.Server.Name, "err", err)
		_ = s.c.Send(refusal(sandbox.ExitRefused, "%v", err))
		return
	}
	if err := s.c.Send(&Reply{V: ProtocolVersion, Attached: &Attached{Cgroup: e.jail.Group().V2Path(), CgroupID: e.jail.Group().ID()}}); err != nil {
		return
	}
	// Wait for release or for the client to go: either way the jail ends.
	var req Request
	for {
		fs, err := s.c.Recv(&req)
		closeFiles(fs)
		if err != nil {
			d.log.Info("client of a running jail went away: killing the jail", "server", rec.Server.Name, "instance", rec.Server.Instance)
			return
		}
		if req.Op == OpRelease {
			// The client waits for the reply, and needs nothing of the jail
			// once it runs nothing and its events are out: its sockets and
			// programs go after the reply (the deferred release).
			t0 := time.Now()
			e.jail.Stop()
			removeTmp()
			d.log.Debug("jail stopped on request", "instance", rec.Server.Instance, "took", time.Since(t0))
			_ = s.c.Send(&Reply{V: ProtocolVersion, Released: true})
			return
		}
	}
}

// events sends the backlog and, when following, every new event until the
// client closes or falls too far behind.
func (s *session) events(ctx context.Context, er *EventsRequest) {
	backlog, sub := s.d.hub.subscribe(view{server: er.Server, uid: s.ownerFilter()})
	defer s.d.hub.unsubscribe(sub)
	for i := range backlog {
		if err := s.c.Send(&Reply{V: ProtocolVersion, Event: &backlog[i]}); err != nil {
			return
		}
	}
	if err := s.c.Send(&Reply{V: ProtocolVersion, EndOfBacklog: true}); err != nil || !er.Follow {
		return
	}
	gone := make(chan struct{})
	go func() {
		var r Request
		for {
			fs, err := s.c.Recv(&r)
			closeFiles(fs)
			if err != nil {
				close(gone)
				return
			}
		}
	}()
	for {
		select {
		case e := <-sub.ch:
			if err := s.c.Send(&Reply{V: ProtocolVersion, Event: &e}); err != nil {
				return
			}
		case <-sub.overflowed:
			_ = s.c.Send(refusal(sandbox.ExitRefused, "events: this follower fell more than %d events behind and was cut off; the audit log has them all", subscriberQueue))
			return
		case <-gone:
			return
		case <-ctx.Done():
			return
		}
	}
}

// ownerFilter is whose jails the peer may see: root sees all, a user only
// their own (their servers' paths, arguments and addresses are theirs).
func (s *session) ownerFilter() int {
	if s.peer.UID == 0 {
		return hostOwned
	}
	return s.peer.UID
}

// status is `mcpjail status`, with the jails of uid only (hostOwned: all).
func (d *Daemon) status(uid int) *Status {
	st := &Status{Version: d.opts.Version, PID: os.Getpid(), Started: d.started, Layers: d.layers()}
	st.Lost, _ = d.loader.Lost()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range d.jails {
		if uid != hostOwned && e.rec.UID != uid {
			continue
		}
		js := JailStatus{Server: e.rec.Server, User: e.rec.User, UID: e.rec.UID, PID: e.rec.PID, Profile: e.rec.Profile,
			Started: e.rec.Started, Violations: int(e.violations.Load()), Kills: int(e.kills.Load()), Adopted: e.adopted}
		if e.jail != nil {
			js.Memory, _ = e.jail.Group().MemoryCurrent()
		}
		st.Jails = append(st.Jails, js)
	}
	if uid == hostOwned { // the host's inventory is root's to see
		for _, ds := range d.declared {
			st.Declared = append(st.Declared, *ds)
		}
	}
	return st
}

func (d *Daemon) layers() []string {
	out := []string{"cgroups (" + string(cgroup.DetectMode()) + ")", "eBPF (pinned at " + d.cfg.PinDir + ")"}
	if err := d.loader.LSM(); err != nil {
		out = append(out, err.Error())
	} else {
		out = append(out, "BPF-LSM deny layer: active")
	}
	for _, m := range d.loader.Missing() {
		out = append(out, "missing: "+m)
	}
	return out
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// compile resolves the profile for the peer and compiles it with the
// peer's home; the run's paths are checked to belong to the peer.
func (d *Daemon) compile(peer Peer, pr *PrepareRequest) (*jailRecord, error) {
	if !instancePattern().MatchString(pr.Instance) {
		return nil, &ReplyError{Code: sandbox.ExitUsage, Message: fmt.Sprintf("bad instance id %q", pr.Instance)}
	}
	// A jailed process gets nothing built for it: not a jail (its child is
	// refused at attach too), and not the removal of a "TMPDIR" of its
	// choosing with its user's rights at the session's end.
	if jail, err := cgroup.JailOf(peer.PID); err != nil || jail != "" {
		if err == nil {
			err = fmt.Errorf("pid %d is inside the jail %s: a jailed process cannot start a jail", peer.PID, jail)
		}
		return nil, &ReplyError{Code: sandbox.ExitRefused, Message: err.Error()}
	}
	d.mu.Lock()
	_, dup := d.jails[pr.Instance]
	d.mu.Unlock()
	if dup {
		return nil, &ReplyError{Code: sandbox.ExitRefused, Message: "instance id already in use"}
	}
	prof, label, err := d.resolveProfile(pr)
	if err != nil {
		return nil, err
	}
	if err := checkRunPaths(peer, pr.Workdir, pr.TmpDir); err != nil {
		return nil, &ReplyError{Code: sandbox.ExitRefused, Message: err.Error()}
	}
	if peer.Home == "" {
		return nil, &ReplyError{Code: sandbox.ExitRefused, Message: fmt.Sprintf("uid %d has no entry in the user database (no home for ${HOME})", peer.UID)}
	}
	vars := profiles.Vars{Home: peer.Home, Workdir: pr.Workdir, TmpDir: pr.TmpDir}
	pol, err := prof.Compile(vars)
	if err != nil {
		return nil, &ReplyError{Code: sandbox.ExitUsage, Message: err.Error()}
	}
	name := pr.Name
	if name == "" {
		name = prof.Name()
	} else if err := profiles.CheckName(name); err != nil {
		return nil, &ReplyError{Code: sandbox.ExitUsage, Message: "server " + err.Error()}
	}
	return &jailRecord{Server: audit.Server{Name: name, Instance: pr.Instance}, UID: peer.UID, GID: peer.GID, User: peer.Name,
		Profile: label, Policy: pol, Vars: vars, Started: time.Now(), Declared: isChildOfDaemon(peer)}, nil
}
