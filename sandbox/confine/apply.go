package confine

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Apply confines the calling process, every thread of it, for good:
//
//  1. with CAP_SETPCAP: securebits that make uid 0 ordinary, and an empty
//     capability bounding set (also when the server stays root), on the
//     calling thread only: the bounding set matters at the execve that
//     this thread makes next (see lockRootPrivileges);
//  2. no_new_privs, and no core files (noCoreDumps);
//  3. Landlock (filesystem, TCP/UDP ports, scopes), while the process still
//     has its own credentials: the rules' paths are opened as the launcher
//     sees them, the server's own permissions still apply on top;
//  4. when Creds is set: setgroups, setresgid, setresuid;
//  5. ambient, permitted, effective and inheritable capabilities emptied,
//     then a read-back check of credentials, capabilities, no_new_privs;
//  6. the seccomp deny-list, synchronized to all threads, every refusal
//     answered by the filter itself (no events: see ApplyReporting).
//
// If Missing is non-empty and the spec is not Degraded, Apply refuses
// before changing anything. On any other error the process may be partly
// confined and must exit without running the server. Call it from the
// process that is about to execve the server: its OS thread stays locked,
// so the thread that was checked is the one that runs on.
func (p *Plan) Apply() error {
	_, _, err := p.apply(false)
	return err
}

// ApplyReporting is Apply with the deny-list installed so that its
// refusals can be reported: the calls of EventNotification wait for an
// answer from whoever holds the returned listener (sandbox/seccompnotify),
// which must be handed to a process outside the jail before anything else
// runs here and must never reach the server. Closing the listener makes
// every such call fail with ENOSYS: refused still, without an event.
//
// listener is nil when the plan has no SeccompEvents (Missing says why), or
// when the kernel refused a listener at install time and the spec is
// Degraded: the filter then answers by itself and missing says why.
func (p *Plan) ApplyReporting() (listener *os.File, missing string, err error) {
	return p.apply(true)
}

func (p *Plan) apply(report bool) (*os.File, string, error) {
	if len(p.missing) > 0 && !p.spec.Degraded {
		return nil, "", fmt.Errorf("refusing to run without: %s (--allow-degraded runs anyway)", strings.Join(p.missing, "; "))
	}
	runtime.LockOSThread() // never unlocked, see above
	if p.kernel.canSetPCap {
		if err := lockRootPrivileges(p.kernel.lastCap); err != nil {
			return nil, "", err
		}
	}
	if err := setNoNewPrivs(); err != nil {
		return nil, "", err
	}
	if err := noCoreDumps(); err != nil {
		return nil, "", err
	}
	if err := p.applyLandlock(); err != nil {
		return nil, "", err
	}
	if p.spec.Creds != nil {
		if err := switchCreds(p.spec.Creds); err != nil {
			return nil, "", err
		}
	}
	if err := clearCapabilities(); err != nil {
		return nil, "", err
	}
	if err := verifyNoPrivileges(p.kernel.lastCap, p.kernel.canSetPCap); err != nil {
		return nil, "", fmt.Errorf("verify dropped privileges: %w", err)
	}
	if report && p.seccompNotifyProg != nil {
		return p.installReporting()
	}
	if p.seccompProg != nil {
		if err := installSeccomp(p.seccompProg); err != nil {
			return nil, "", err
		}
	}
	return nil, "", nil
}

// installReporting installs the notifying deny-list. A listener the kernel
// refuses because an inherited filter has one (EBUSY) is a missing layer:
// refused, or with Degraded the list that answers by itself.
func (p *Plan) installReporting() (*os.File, string, error) {
	l, err := installSeccompListener(p.seccompNotifyProg)
	if err == nil {
		return l, "", nil
	}
	if !errors.Is(err, unix.EBUSY) {
		return nil, "", err
	}
	missing := "seccomp refusal events (" + errListenerTaken.Error() + ")"
	if !p.spec.Degraded {
		return nil, "", fmt.Errorf("refusing to run without: %s (--allow-degraded runs anyway)", missing)
	}
	if err := installSeccomp(p.seccompProg); err != nil {
		return nil, "", err
	}
	return nil, missing, nil
}

// noCoreDumps sets RLIMIT_CORE to 0, soft and hard. A crashing server
// (node aborts on a heap out of memory, which a memory limit makes likely)
// would otherwise write its memory, env.secrets included, as a core file
// into its working directory, often a repository. The server cannot raise
// the hard limit again without CAP_SYS_RESOURCE. A core_pattern pipe
// (systemd-coredump) is the host's own business and still runs.
func noCoreDumps() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return fmt.Errorf("set RLIMIT_CORE to 0: %w", err)
	}
	return nil
}
