package bpf

import (
	"errors"
	"fmt"
	"io"

	"github.com/cilium/ebpf/link"
)

// KeepHooksWarm attaches every program that jails get (connect, sendmsg,
// sock_create, egress, UNIX) to the empty v2 cgroup at cgroupPath, until the
// returned Closer is closed.
//
// The kernel turns each cgroup hook type on, for the whole host, with a
// static key when the first program of that type is attached anywhere, and
// off when the last one goes. Each switch rewrites kernel text and
// interrupts every CPU. A daemon running one jail at a time would pay eight
// switches when the jail starts and eight when it ends; standing attachments
// keep the keys on. The cgroup must stay empty: the programs deny a task
// whose cgroup has no jail, so one placed there by mistake could not use
// the network, and no task of a jail or of the host is affected.
func (l *Loader) KeepHooksWarm(cgroupPath string) (io.Closer, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("keep hooks warm: eBPF loader is closed")
	}
	w := &warmHooks{}
	for _, a := range l.jailAttachments() {
		lk, err := link.AttachCgroup(link.CgroupOptions{Path: cgroupPath, Attach: a.at, Program: a.prog})
		if err != nil {
			return nil, errors.Join(fmt.Errorf("keep hooks warm: attach %s to %s: %w", a.at, cgroupPath, err), w.Close())
		}
		w.links = append(w.links, lk)
	}
	return w, nil
}

// warmHooks are KeepHooksWarm's links; they are not pinned, so they go
// with the process that holds them.
type warmHooks struct{ links []link.Link }

func (w *warmHooks) Close() error {
	var errs []error
	for _, lk := range w.links {
		errs = append(errs, lk.Close())
	}
	w.links = nil
	return errors.Join(errs...)
}
