package daemon

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/mcpjail/mcpjail/profiles"
)

// Reload applies a new configuration and the profiles as they are now on
// disk (SIGHUP). Every running jail's profile is compiled again first; if
// anything is wrong, nothing changes and the error is returned (and logged
// and counted by the caller). Then each jail's eBPF rules are swapped in
// one map update, so a jail never runs with half a policy. Landlock rules
// and cgroup limits cannot change under a running server: they apply to
// new runs.
func (d *Daemon) Reload(cfg Config) (err error) {
	defer func() {
		if d.opts.Metrics != nil {
			d.opts.Metrics.Reload(err)
		}
		if err != nil {
			d.log.Error("reload rejected; the previous configuration and rules stay", "err", err)
		}
	}()
	if cfg.Socket != d.cfg.Socket || cfg.PinDir != d.cfg.PinDir || cfg.StateDir != d.cfg.StateDir {
		return errors.New("socket, pin_dir and state_dir change only with a restart")
	}
	auth, err := newAuthorizer(cfg)
	if err != nil {
		return err
	}
	next := &Daemon{cfg: cfg} // resolveProfile reads only the config
	type change struct {
		e   *entry
		pol *profiles.Policy
	}
	var (
		changes []change
		errs    []error
	)
	for _, e := range d.entries() {
		name, ok := reloadableName(e.rec.Profile)
		if !ok {
			continue // a client's own profile: only the client has it
		}
		prof, label, err := next.resolveProfile(&PrepareRequest{Profile: name})
		if err != nil {
			errs = append(errs, fmt.Errorf("jail %s (%s): %w", e.rec.Server.Instance, e.rec.Server.Name, err))
			continue
		}
		pol, err := prof.Compile(e.rec.Vars)
		if err != nil {
			errs = append(errs, fmt.Errorf("jail %s (%s), profile %s: %w", e.rec.Server.Instance, e.rec.Server.Name, label, err))
			continue
		}
		changes = append(changes, change{e, pol})
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, c := range changes {
		if err := c.e.jail.UpdatePolicy(c.pol); err != nil {
			// The kernel refused a map update: the jail keeps its old rules
			// (the swap is one update), and says so.
			errs = append(errs, fmt.Errorf("jail %s (%s): %w", c.e.rec.Server.Instance, c.e.rec.Server.Name, err))
			continue
		}
		c.e.rec.Policy = c.pol
		if err := d.state.save(c.e.rec); err != nil {
			errs = append(errs, err)
		}
	}
	d.mu.Lock()
	d.cfg, d.auth = cfg, auth
	d.mu.Unlock()
	d.log.Info("configuration and profiles reloaded; network rules of running jails replaced, filesystem rules and limits apply to new runs",
		"jails_updated", len(changes))
	return errors.Join(errs...)
}

// reloadableName is the profile name to resolve again for a jail's label:
// a built-in or a file of the profile directories.
func reloadableName(label string) (string, bool) {
	if name, ok := strings.CutPrefix(label, "builtin:"); ok {
		return name, true
	}
	if strings.HasPrefix(label, "client:") {
		return "", false
	}
	return strings.TrimSuffix(filepath.Base(label), ".yaml"), true
}

// config is the current configuration (Reload replaces it).
func (d *Daemon) config() Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

func (d *Daemon) authorizer() *authorizer {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.auth
}
