package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/cgroup"
)

// jailRecord is what a restarted daemon needs to adopt a running jail. It
// is written when the jail's cgroup exists, before anything runs in it.
type jailRecord struct {
	Server  audit.Server     `json:"server"`
	UID     int              `json:"uid"`
	GID     int              `json:"gid"`
	User    string           `json:"user"`
	Profile string           `json:"profile"`
	Policy  *profiles.Policy `json:"policy"`
	// Vars are what the profile was compiled with, to compile it again on
	// a reload.
	Vars profiles.Vars `json:"vars"`
	// Declared is set for a server of servers.d, which a restarted daemon
	// starts afresh instead of adopting.
	Declared bool        `json:"declared,omitempty"`
	Cgroup   cgroup.Spec `json:"cgroup"`
	CgroupID uint64      `json:"cgroup_id"`
	PID      int         `json:"pid,omitempty"`
	Started  time.Time   `json:"started"`
}

// instancePattern is the launcher's instance id: 12 lowercase hex digits.
var instancePattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{12}$`) })

// stateDir holds one JSON file per running jail, replaced atomically by
// rename. Not fsynced: it lives on /run (tmpfs) and must survive the
// daemon's crash, not the host's, whose reboot ends every jail anyway.
type stateDir struct{ dir string }

func (s *stateDir) path(instance string) string {
	return filepath.Join(s.dir, instance+".json")
}

func (s *stateDir) save(r *jailRecord) error {
	if !instancePattern().MatchString(r.Server.Instance) {
		return fmt.Errorf("save jail state: bad instance id %q", r.Server.Instance)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("save jail state: %w", err)
	}
	tmp, err := os.CreateTemp(s.dir, ".tmp-")
	if err != nil {
		return fmt.Errorf("save jail state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("save jail state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save jail state: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path(r.Server.Instance)); err != nil {
		return fmt.Errorf("save jail state: %w", err)
	}
	return nil
}

func (s *stateDir) remove(instance string) error {
	if err := os.Remove(s.path(instance)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove jail state: %w", err)
	}
	return nil
}

// load reads every record; unreadable ones are returned as errors by name
// so that the daemon can say which jail it could not adopt.
func (s *stateDir) load() ([]*jailRecord, []error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, []error{fmt.Errorf("read state directory: %w", err)}
	}
	var (
		out  []*jailRecord
		errs []error
	)
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !instancePattern().MatchString(name) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			errs = append(errs, fmt.Errorf("jail %s: %w", name, err))
			continue
		}
		var r jailRecord
		if err := json.Unmarshal(b, &r); err != nil || r.Server.Instance != name || r.Policy == nil {
			errs = append(errs, fmt.Errorf("jail %s: unreadable state record", name))
			continue
		}
		out = append(out, &r)
	}
	return out, errs
}
