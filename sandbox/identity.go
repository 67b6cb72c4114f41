package sandbox

import (
	"fmt"
	"os"
	"os/user"
	"strconv"

	"github.com/mcpjail/mcpjail/sandbox/confine"
)

// identity is who the server runs as and where its home is.
type identity struct {
	creds *confine.Creds // nil: keep mcpjail's own uid (unprivileged run)
	home  string
	// invokingUID owns secret files besides root: the sudo caller, or ourselves.
	invokingUID int
	desc        string // for logs: "user nobody (65534)"
}

// resolveIdentity picks the server's user. As root: the profile's server.user,
// else the invoking user behind sudo, else root without capabilities. As
// anyone else: ourselves.
func resolveIdentity(profileUser string, getenv func(string) string) (identity, error) {
	euid := os.Geteuid()
	id := identity{invokingUID: euid}
	if s := getenv("SUDO_UID"); s != "" && euid == 0 {
		if n, err := strconv.Atoi(s); err == nil {
			id.invokingUID = n
		}
	}
	if euid != 0 {
		u, err := user.LookupId(strconv.Itoa(euid))
		if err != nil {
			return id, fmt.Errorf("look up uid %d: %w", euid, err)
		}
		id.home, id.desc = u.HomeDir, fmt.Sprintf("user %s (%d), unprivileged", u.Username, euid)
		return id, nil
	}
	var (
		u   *user.User
		err error
	)
	switch {
	case profileUser != "":
		if u, err = user.Lookup(profileUser); err != nil {
			if u, err = user.LookupId(profileUser); err != nil {
				return id, fmt.Errorf("server.user %q: no such user", profileUser)
			}
		}
	case getenv("SUDO_UID") != "":
		if u, err = user.LookupId(getenv("SUDO_UID")); err != nil {
			return id, fmt.Errorf("SUDO_UID %q: %w", getenv("SUDO_UID"), err)
		}
	default:
		if u, err = user.LookupId("0"); err != nil {
			return id, fmt.Errorf("look up root: %w", err)
		}
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return id, fmt.Errorf("user %s has a non-numeric uid/gid", u.Username)
	}
	if getenv("SUDO_GID") != "" && profileUser == "" && getenv("SUDO_UID") != "" {
		if g, err := strconv.ParseUint(getenv("SUDO_GID"), 10, 32); err == nil {
			gid = g
		}
	}
	id.creds = &confine.Creds{UID: uint32(uid), GID: uint32(gid), Groups: supplementaryGroups(u, uint32(gid))}
	id.home = u.HomeDir
	id.desc = fmt.Sprintf("user %s (%d)", u.Username, uid)
	return id, nil
}

// supplementaryGroups lists the user's groups; on lookup failure it returns
// only the primary group (fewer rights, never more).
func supplementaryGroups(u *user.User, primary uint32) []uint32 {
	out := []uint32{primary}
	ids, err := u.GroupIds()
	if err != nil {
		return out
	}
	for _, s := range ids {
		if g, err := strconv.ParseUint(s, 10, 32); err == nil && uint32(g) != primary {
			out = append(out, uint32(g))
		}
	}
	return out
}
