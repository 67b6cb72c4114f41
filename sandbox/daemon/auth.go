package daemon

import (
	"fmt"
	"net"
	"os/user"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// Peer is who is on the other end of a connection, as the kernel says
// (SO_PEERCRED at connect time), never as the client claims.
type Peer struct {
	PID  int
	UID  int
	GID  int
	Name string // user name, or the uid when it has none
	Home string
}

func peerOf(c *net.UnixConn) (Peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	var (
		cred *unix.Ucred
		cerr error
	)
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	if cerr != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", cerr)
	}
	p := Peer{PID: int(cred.Pid), UID: int(cred.Uid), GID: int(cred.Gid), Name: strconv.Itoa(int(cred.Uid))}
	if u, err := user.LookupId(p.Name); err == nil {
		p.Name, p.Home = u.Username, u.HomeDir
	}
	return p, nil
}

// authorizer decides who may use the socket: root, the users listed, and
// the members of one group (by the group database, or the peer's primary gid).
type authorizer struct {
	users []string
	gid   int // -1: no group
	group string
}

func newAuthorizer(cfg Config) (*authorizer, error) {
	a := &authorizer{users: cfg.AllowUsers, gid: -1, group: cfg.AllowGroup}
	if cfg.AllowGroup != "" {
		g, err := user.LookupGroup(cfg.AllowGroup)
		if err != nil {
			if g, err = user.LookupGroupId(cfg.AllowGroup); err != nil {
				return nil, fmt.Errorf("allow_group %q: no such group", cfg.AllowGroup)
			}
		}
		n, err := strconv.Atoi(g.Gid)
		if err != nil {
			return nil, fmt.Errorf("allow_group %q: non-numeric gid %q", cfg.AllowGroup, g.Gid)
		}
		a.gid = n
	}
	return a, nil
}

// allowed says whether p may use the daemon, and why not.
func (a *authorizer) allowed(p Peer) (bool, string) {
	if p.UID == 0 {
		return true, ""
	}
	if slices.Contains(a.users, p.Name) || slices.Contains(a.users, strconv.Itoa(p.UID)) {
		return true, ""
	}
	if a.gid >= 0 {
		if p.GID == a.gid {
			return true, ""
		}
		if u, err := user.LookupId(strconv.Itoa(p.UID)); err == nil {
			if ids, err := u.GroupIds(); err == nil && slices.Contains(ids, strconv.Itoa(a.gid)) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("user %s (uid %d) is not root, not in allow_users and not a member of group %s", p.Name, p.UID, a.group)
	}
	return false, fmt.Sprintf("user %s (uid %d) is not root and not in allow_users (no allow_group is configured)", p.Name, p.UID)
}
