package tests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// openPTY opens a new pseudo-terminal pair without any library.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	unlock := int32(0)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, m.Fd(), unix.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); errno != 0 {
		t.Fatalf("unlock pty: %v", errno)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty slave: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// TestServerCannotTypeIntoTheTerminal: run from a terminal (an operator
// trying a server by hand), a server shares that terminal with the
// operator's shell, which would read whatever the server pushes with
// TIOCSTI once the server exits (CVE-2017-5226). The same attempt works
// bare, from the same terminal; in the jail the seccomp deny-list refuses it.
func TestServerCannotTypeIntoTheTerminal(t *testing.T) {
	requireRoot(t)
	if b, err := os.ReadFile("/proc/sys/dev/tty/legacy_tiocsti"); err == nil && strings.TrimSpace(string(b)) == "0" {
		t.Logf("this kernel refuses TIOCSTI to everyone without CAP_SYS_ADMIN (dev.tty.legacy_tiocsti = 0); the control runs as root")
	}
	profile := writeProfile(t, t.TempDir(), "e2e-terminal", fmt.Sprintf("filesystem:\n  exec: [%q]\n", suite.hostile))
	for _, tc := range []struct {
		name  string
		jail  bool
		errno string
	}{{"bare", false, ""}, {"jailed", true, "EPERM"}} {
		t.Run(tc.name, func(t *testing.T) {
			_, slave := openPTY(t)
			ctx := withTimeout(t, 30*time.Second)
			argv := []string{suite.hostile, "attempt", "tiocsti"}
			var cmd *exec.Cmd
			if tc.jail {
				cmd, _ = jailSpec{profile: profile}.command(t, ctx, argv...)
			} else {
				cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
				cmd.Env = defaultClientEnv()
			}
			var out, errOut bytes.Buffer
			// The terminal is the child's stdin and controlling terminal, in a
			// session of its own: as for a shell's foreground command.
			cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, &out, &errOut
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			if err := cmd.Run(); err != nil {
				t.Fatalf("%v: %v\n%s", cmd.Args, err, errOut.String())
			}
			r := decodeAttempt(t, out.String())
			if tc.errno == "" && !r.OK {
				t.Fatalf("bare TIOCSTI failed (errno %s: %s): the control cannot show the danger on this kernel", r.Errno, r.Detail)
			}
			if tc.errno != "" && (r.OK || r.Errno != tc.errno) {
				t.Errorf("jailed TIOCSTI: ok=%v errno=%q (%s), want %s", r.OK, r.Errno, r.Detail, tc.errno)
			}
		})
	}
}
