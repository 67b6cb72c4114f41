package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	cgroups "github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
)

// Where the v2 hierarchy is mounted, per mode (the containerd convention,
// which DetectMode relies on too).
const (
	v2MountUnified = "/sys/fs/cgroup"
	v2MountHybrid  = "/sys/fs/cgroup/unified"
)

// layout is where the caller's own cgroup lies in each hierarchy a jail can
// use. Jails go beneath it, so they keep the caller's limits and accounting
// the way systemd delegation expects.
type layout struct {
	mode    Mode
	v2Mount string            // "" in pure v1
	v2Own   string            // absolute directory of the caller's v2 cgroup
	v1      map[string]v1Hier // mounted v1 hierarchies among the ones a jail uses
}

// v1Hier is one v1 hierarchy, seen through the containerd subsystem that
// knows its mount point.
type v1Hier struct {
	sub cgroup1.Subsystem
	own string // the caller's cgroup, relative to the hierarchy ("/process_api/x")
}

// pather is the part of containerd's v1 subsystems that maps a cgroup path to
// a directory; every subsystem cgroup1.Default returns implements it.
type pather interface {
	Path(path string) string
}

// dir is the absolute directory of rel in the hierarchy.
func (h v1Hier) dir(rel string) string { return h.sub.(pather).Path(rel) }

// discoverLayout finds the caller's own cgroup in every hierarchy of mode.
func discoverLayout(mode Mode) (*layout, error) {
	l := &layout{mode: mode, v1: map[string]v1Hier{}}
	switch mode {
	case ModeV2:
		l.v2Mount = v2MountUnified
	case ModeHybrid:
		l.v2Mount = v2MountHybrid
	case ModeV1:
	default:
		return nil, errors.New("no cgroup filesystem is mounted at /sys/fs/cgroup")
	}
	if l.v2Mount != "" {
		data, err := os.ReadFile("/proc/self/cgroup")
		if err != nil {
			return nil, fmt.Errorf("find own cgroup: %w", err)
		}
		own, err := unifiedPath(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("find own cgroup in /proc/self/cgroup: %w", err)
		}
		if l.v2Own, err = ownDir(l.v2Mount, own); err != nil {
			return nil, err
		}
	}
	if mode != ModeV2 {
		if err := l.discoverV1(); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// discoverV1 records the mounted v1 hierarchies a jail uses. A controller
// that is not mounted is simply absent; Create reports the limit as missing.
func (l *layout) discoverV1() error {
	subs, err := cgroup1.Default()
	if err != nil {
		return fmt.Errorf("list cgroup v1 hierarchies: %w", err)
	}
	// NestedPath("") resolves the caller's path per hierarchy from
	// /proc/self/cgroup, relative to each hierarchy's mount root.
	own := cgroup1.NestedPath("")
	for _, s := range subs {
		name := string(s.Name())
		switch name {
		case ctrlMemory, ctrlPids, ctrlCPU, ctrlFreezer:
		default:
			continue
		}
		if _, ok := s.(pather); !ok {
			continue
		}
		rel, err := own(s.Name())
		if errors.Is(err, cgroup1.ErrControllerNotActive) {
			continue
		}
		if err != nil {
			return fmt.Errorf("find own %s cgroup: %w", name, err)
		}
		h := v1Hier{sub: s, own: rel}
		if _, err := ownDir(h.dir("/"), rel); err != nil {
			return err
		}
		l.v1[name] = h
	}
	return nil
}

// unifiedPath returns the v2 entry ("0::/path") of a /proc/PID/cgroup file.
func unifiedPath(r io.Reader) (string, error) {
	_, unified, err := cgroups.ParseCgroupFromReaderUnified(r)
	if err != nil {
		return "", err
	}
	if unified == "" {
		return "", errors.New("no cgroup v2 entry")
	}
	return unified, nil
}

// ownDir joins a hierarchy's mount point and the caller's cgroup path, which
// must be clean and absolute (a path shown relative to a foreign cgroup
// namespace, "/../x", is refused rather than resolved outside the mount), and
// checks that the directory exists.
func ownDir(mount, own string) (string, error) {
	if !filepath.IsAbs(own) || filepath.Clean(own) != own {
		return "", fmt.Errorf("own cgroup %q under %s is not a clean absolute path", own, mount)
	}
	dir := filepath.Join(mount, own)
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("own cgroup: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("own cgroup %s is not a directory", dir)
	}
	return dir, nil
}
