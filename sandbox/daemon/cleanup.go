package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/mcpjail/mcpjail/bpf"
	"github.com/mcpjail/mcpjail/sandbox/cgroup"
)

// Cleanup removes everything the daemon leaves behind on purpose: every
// recorded jail (its processes killed, its cgroup removed), then the pinned
// eBPF programs, links and maps, the state records and the socket. It is
// for a host that wants mcpjail gone (the unit's ExecStopPost on a real
// stop), never for a restart: a restarted daemon adopts the jails instead.
func Cleanup(cfg Config, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	var errs []error
	st := &stateDir{dir: cfg.StateDir}
	recs, lerrs := st.load()
	errs = append(errs, lerrs...)
	for _, r := range recs {
		ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
		if err := cgroup.FromSpec(r.Cgroup).Remove(ctx); err != nil {
			errs = append(errs, fmt.Errorf("jail %s (%s): %w", r.Server.Instance, r.Server.Name, err))
		} else {
			logger.Info("removed jail", "server", r.Server.Name, "instance", r.Server.Instance)
		}
		cancel()
		removeRunTmp(r, logger)
		if err := st.remove(r.Server.Instance); err != nil {
			errs = append(errs, err)
		}
	}
	// After the cgroups: no program is detached while a jail still runs.
	if err := bpf.Cleanup(cfg.PinDir); err != nil {
		errs = append(errs, fmt.Errorf("remove pinned eBPF objects: %w", err))
	}
	if err := cgroup.RemoveDelegateLeaf(delegateLeaf); err != nil {
		errs = append(errs, err)
	}
	if err := cgroup.RemoveSibling(warmLeaf); err != nil {
		errs = append(errs, err)
	}
	if err := os.Remove(cfg.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove socket: %w", err))
	}
	if err := os.Remove(cfg.StateDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove state directory: %w", err))
	}
	return errors.Join(errs...)
}
