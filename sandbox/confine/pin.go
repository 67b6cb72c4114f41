package confine

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// pinnedRules holds one O_PATH descriptor per path rule, opened at Apply
// time and checked against the device and inode NewPlan saw. go-landlock
// takes paths, so it is handed /proc/self/fd/N, which names exactly that
// file: a path swapped for a symlink (say, into a denied directory) after
// the plan was made is refused instead of followed.
type pinnedRules struct {
	fds   []int
	paths []string // /proc/self/fd/N, in PathRules order
}

func pinPathRules(rules []PathRule) (*pinnedRules, error) {
	pinned := &pinnedRules{}
	for _, r := range rules {
		fd, err := unix.Open(r.Path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			pinned.release()
			return nil, fmt.Errorf("open %s for its landlock rule: %w", r.Path, err)
		}
		pinned.fds = append(pinned.fds, fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			pinned.release()
			return nil, fmt.Errorf("stat %s for its landlock rule: %w", r.Path, err)
		}
		if st.Dev != r.dev || st.Ino != r.ino {
			pinned.release()
			return nil, fmt.Errorf("%s changed between planning and applying its landlock rule (device/inode %d/%d, planned %d/%d)",
				r.Path, st.Dev, st.Ino, r.dev, r.ino)
		}
		pinned.paths = append(pinned.paths, fmt.Sprintf("/proc/self/fd/%d", fd))
	}
	return pinned, nil
}

func (p *pinnedRules) release() {
	for _, fd := range p.fds {
		unix.Close(fd)
	}
	p.fds = nil
}
