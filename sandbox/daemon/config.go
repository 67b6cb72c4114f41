// Package daemon is `mcpjail daemon`: one root process that loads the eBPF
// layer once, keeps it pinned, and builds the privileged part of the jail
// (cgroup, limits, eBPF registration, kills) for the unprivileged `mcpjail
// run` of allowed users, over a UNIX socket.
package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Defaults of the daemon's configuration.
const (
	DefaultConfigPath = "/etc/mcpjail/mcpjail.yaml"
	DefaultPinDir     = "/sys/fs/bpf/mcpjail"
	DefaultStateDir   = "/run/mcpjail/jails"
	DefaultAuditLog   = "/var/log/mcpjail/audit.jsonl"
	DefaultMetrics    = "127.0.0.1:9464"
	defaultAuditMax   = 64 << 20
	defaultAuditKeep  = 5
	defaultProfileDir = "/etc/mcpjail/profiles"
	defaultServersDir = "/etc/mcpjail/servers.d"
	maxConfigSize     = 1 << 20
	// socketPermissions let anyone connect: every peer is authorized by its
	// kernel credentials (SO_PEERCRED), and a refused one is logged.
	socketPermissions   = 0o666
	stateDirPermissions = 0o700
)

// Config is /etc/mcpjail/mcpjail.yaml. Unknown keys are errors: a typo in
// a security setting must not be ignored.
type Config struct {
	// Socket is the UNIX socket clients connect to.
	Socket string `yaml:"socket"`
	// AllowGroup names the group whose members may use the socket, besides
	// root; empty means root only.
	AllowGroup string `yaml:"allow_group"`
	// AllowUsers lists user names (or numeric uids) allowed besides the group.
	AllowUsers []string `yaml:"allow_users"`
	// AllowUserProfiles lets clients send a profile of their own instead of
	// naming one of the daemon's.
	AllowUserProfiles bool `yaml:"allow_user_profiles"`
	// ProfileDirs are searched, in order, for NAME.yaml before the built-ins.
	ProfileDirs []string `yaml:"profile_dirs"`
	// ServersDir holds declared servers (*.yaml).
	ServersDir string `yaml:"servers_dir"`
	// MetricsAddress serves Prometheus metrics; empty turns them off.
	MetricsAddress string `yaml:"metrics_address"`
	// AuditLog receives every event as a JSON line; empty turns it off.
	AuditLog         string `yaml:"audit_log"`
	AuditLogMaxBytes int64  `yaml:"audit_log_max_bytes"`
	AuditLogKeep     int    `yaml:"audit_log_keep"`
	// PinDir is where the eBPF programs, links and maps are pinned.
	PinDir string `yaml:"pin_dir"`
	// StateDir records running jails so a restarted daemon adopts them.
	StateDir string `yaml:"state_dir"`
}

// DefaultConfig is the configuration when no file exists.
func DefaultConfig() Config {
	return Config{
		Socket:           DefaultSocket,
		ProfileDirs:      []string{defaultProfileDir},
		ServersDir:       defaultServersDir,
		MetricsAddress:   DefaultMetrics,
		AuditLog:         DefaultAuditLog,
		AuditLogMaxBytes: defaultAuditMax,
		AuditLogKeep:     defaultAuditKeep,
		PinDir:           DefaultPinDir,
		StateDir:         DefaultStateDir,
	}
}

// LoadConfig reads path over the defaults. A missing file at the default
// path gives the defaults; a missing file that was asked for is an error.
func LoadConfig(path string, explicit bool) (Config, error) {
	cfg := DefaultConfig()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return cfg, cfg.validate()
	}
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	if len(data) > maxConfigSize {
		return cfg, fmt.Errorf("config %s: larger than %d bytes", path, maxConfigSize)
	}
	if err := ParseConfig(data, &cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes data over cfg strictly and validates the result.
func ParseConfig(data []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// io.EOF is an empty (all comments) file: the defaults.
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return cfg.validate()
}

func (c *Config) validate() error {
	var errs []error
	abs := func(key, p string, required bool) {
		if p == "" {
			if required {
				errs = append(errs, fmt.Errorf("%s: must be set", key))
			}
			return
		}
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			errs = append(errs, fmt.Errorf("%s: %q is not a clean absolute path", key, p))
		}
	}
	abs("socket", c.Socket, true)
	abs("pin_dir", c.PinDir, true)
	abs("state_dir", c.StateDir, true)
	abs("servers_dir", c.ServersDir, false)
	abs("audit_log", c.AuditLog, false)
	for i, d := range c.ProfileDirs {
		abs(fmt.Sprintf("profile_dirs[%d]", i), d, true)
	}
	if c.PinDir != "" && !strings.HasPrefix(c.PinDir, "/sys/fs/bpf/") {
		errs = append(errs, fmt.Errorf("pin_dir: %q is not below /sys/fs/bpf", c.PinDir))
	}
	if c.AuditLogMaxBytes < 4096 {
		errs = append(errs, fmt.Errorf("audit_log_max_bytes: %d is below 4096", c.AuditLogMaxBytes))
	}
	if c.AuditLogKeep < 1 {
		errs = append(errs, fmt.Errorf("audit_log_keep: %d, must be at least 1", c.AuditLogKeep))
	}
	return errors.Join(errs...)
}
