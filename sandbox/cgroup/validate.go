package cgroup

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
)

const (
	// cpuPeriodUS is the CFS period, the kernel's default in v1 and v2.
	cpuPeriodUS = 100000
	// minCPUMillis is the smallest quota the kernel accepts (1 ms per period).
	minCPUMillis = 10
)

// validateName accepts a single path element made of [A-Za-z0-9._-], which
// can be neither "." nor ".." and cannot address anything but a direct child
// of the "mcpjail" parent.
func validateName(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("invalid cgroup name %q", name)
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("invalid cgroup name %q: longer than %d bytes", name, maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return fmt.Errorf("invalid cgroup name %q: only letters, digits, '.', '_' and '-' are allowed", name)
		}
	}
	return nil
}

// validateLimits rejects values no kernel would take, before anything is
// created.
func validateLimits(l Limits) error {
	if l.MemoryBytes < 0 || l.Pids < 0 || l.CPUMillis < 0 {
		return fmt.Errorf("invalid cgroup limits %+v: negative value", l)
	}
	if _, err := cpuQuotaUS(l.CPUMillis); err != nil {
		return err
	}
	return nil
}

// cpuQuotaUS turns thousandths of a core into a CFS quota in microseconds per
// cpuPeriodUS: 1000 millis (one core) is a full period, 1500 one and a half.
// Zero means no quota.
func cpuQuotaUS(millis int64) (int64, error) {
	switch {
	case millis == 0:
		return 0, nil
	case millis < minCPUMillis:
		return 0, fmt.Errorf("invalid cpu limit %d millicores: the kernel's minimum quota is %d", millis, minCPUMillis)
	case millis > math.MaxInt64/(cpuPeriodUS/1000):
		return 0, fmt.Errorf("invalid cpu limit %d millicores: too large", millis)
	}
	return millis * (cpuPeriodUS / 1000), nil
}

// validateSpec checks the shape of a Spec without touching the system: each
// directory is absolute, clean, named like a jail, directly under an
// "mcpjail" parent, and all of them carry the same jail name.
func validateSpec(s Spec) error {
	switch s.Mode {
	case ModeV2, ModeHybrid, ModeV1:
	default:
		return fmt.Errorf("unknown cgroup mode %q", s.Mode)
	}
	if s.Mode == ModeV1 && s.V2 != "" {
		return errors.New("a v1 group has no v2 directory")
	}
	if s.Mode != ModeV1 && s.V2 == "" {
		return fmt.Errorf("a %s group needs its v2 directory", s.Mode)
	}
	if s.Mode == ModeV2 && len(s.V1) > 0 {
		return errors.New("a v2 group has no v1 directories")
	}
	if s.V2 == "" && len(s.V1) == 0 {
		return errors.New("no directories")
	}
	name := ""
	check := func(dir string) error {
		if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
			return fmt.Errorf("%q is not a clean absolute path", dir)
		}
		if filepath.Base(filepath.Dir(dir)) != parentName {
			return fmt.Errorf("%s is not inside a %q parent", dir, parentName)
		}
		base := filepath.Base(dir)
		if err := validateName(base); err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		if name != "" && base != name {
			return fmt.Errorf("%s: jail name differs from %q", dir, name)
		}
		name = base
		return nil
	}
	if s.V2 != "" {
		if err := check(s.V2); err != nil {
			return err
		}
	}
	for _, c := range sortedKeys(s.V1) {
		switch c {
		case ctrlMemory, ctrlPids, ctrlCPU, ctrlFreezer:
		default:
			return fmt.Errorf("unexpected v1 controller %q", c)
		}
		if err := check(s.V1[c]); err != nil {
			return err
		}
	}
	return nil
}
