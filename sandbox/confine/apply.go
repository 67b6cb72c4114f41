package confine

import (
	"fmt"
	"runtime"
	"strings"
)

// Apply confines the calling process, every thread of it, for good:
//
//  1. with CAP_SETPCAP: securebits that make uid 0 ordinary, and an empty
//     capability bounding set (also when the server stays root);
//  2. no_new_privs;
//  3. Landlock (filesystem, TCP/UDP ports, scopes), while the process still
//     has its own credentials: the rules' paths are opened as the launcher
//     sees them, the server's own permissions still apply on top;
//  4. when Creds is set: setgroups, setresgid, setresuid;
//  5. ambient, permitted, effective and inheritable capabilities emptied,
//     then a read-back check of credentials, capabilities, no_new_privs;
//  6. the seccomp deny-list, synchronized to all threads.
//
// If Missing is non-empty and the spec is not Degraded, Apply refuses
// before changing anything. On any other error the process may be partly
// confined and must exit without running the server. Call it from the
// process that is about to execve the server: its OS thread stays locked,
// so the thread that was checked is the one that runs on.
func (p *Plan) Apply() error {
	if len(p.missing) > 0 && !p.spec.Degraded {
		return fmt.Errorf("refusing to run without: %s (--allow-degraded runs anyway)", strings.Join(p.missing, "; "))
	}
	runtime.LockOSThread() // never unlocked, see above
	if p.kernel.canSetPCap {
		if err := lockRootPrivileges(p.kernel.lastCap); err != nil {
			return err
		}
	}
	if err := setNoNewPrivs(); err != nil {
		return err
	}
	if err := p.applyLandlock(); err != nil {
		return err
	}
	if p.spec.Creds != nil {
		if err := switchCreds(p.spec.Creds); err != nil {
			return err
		}
	}
	if err := clearCapabilities(); err != nil {
		return err
	}
	if err := verifyNoPrivileges(p.kernel.lastCap, p.kernel.canSetPCap); err != nil {
		return fmt.Errorf("verify dropped privileges: %w", err)
	}
	if p.seccompProg != nil {
		if err := installSeccomp(p.seccompProg); err != nil {
			return err
		}
	}
	return nil
}
