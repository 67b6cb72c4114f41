package sandbox

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// PidfdPID is the pid, in this process's PID namespace, of a pidfd's
// process, from /proc/self/fdinfo.
func PidfdPID(pidfd *os.File) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", pidfd.Fd()))
	if err != nil {
		return 0, fmt.Errorf("read pidfd: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "Pid:")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		pid, err := strconv.Atoi(v)
		if err != nil || pid <= 0 {
			return 0, fmt.Errorf("the pidfd's process has exited or is outside this pid namespace (Pid: %s)", v)
		}
		return pid, nil
	}
	return 0, errors.New("the descriptor is not a pidfd")
}
