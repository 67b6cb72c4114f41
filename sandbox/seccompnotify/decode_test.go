package seccompnotify

import (
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

func args(a ...uint64) [6]uint64 {
	var out [6]uint64
	copy(out[:], a)
	return out
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		syscall string
		args    [6]uint64
		want    string
	}{
		{"bpf", args(unix.BPF_MAP_CREATE, 0xc000012345, 72), "bpf BPF_MAP_CREATE"},
		{"bpf", args(unix.BPF_PROG_LOAD), "bpf BPF_PROG_LOAD"},
		{"bpf", args(36), "bpf BPF_TOKEN_CREATE"},
		{"bpf", args(0xffff), "bpf cmd 65535"},
		// The kernel reads an int: junk in the high bits does not change the command.
		{"bpf", args(1<<40 | unix.BPF_PROG_LOAD), "bpf BPF_PROG_LOAD"},
		{"ptrace", args(unix.PTRACE_ATTACH, 42), "ptrace PTRACE_ATTACH pid 42"},
		{"ptrace", args(unix.PTRACE_SEIZE, 7, 0, 0), "ptrace PTRACE_SEIZE pid 7"},
		{"ptrace", args(unix.PTRACE_TRACEME, 99), "ptrace PTRACE_TRACEME"},
		{"ptrace", args(0x7777, 1), "ptrace request 30583 pid 1"},
		{"ptrace", args(unix.PTRACE_ATTACH, 0xffffffff), "ptrace PTRACE_ATTACH pid -1"},
		{"perf_event_open", args(0xc000, 0, 0xffffffff, 0xffffffff, 0), "perf_event_open pid 0 cpu -1"},
		{"process_vm_readv", args(1234), "process_vm_readv pid 1234"},
		{"process_vm_writev", args(1), "process_vm_writev pid 1"},
		{"io_uring_setup", args(8, 0xc000), "io_uring_setup entries 8"},
		{"io_uring_enter", args(5, 1, 1), "io_uring_enter fd 5"},
		{"io_uring_register", args(5, 2), "io_uring_register fd 5 opcode 2"},
		{"init_module", args(0xc000, 4096), "init_module 4096 bytes"},
		{"finit_module", args(3), "finit_module fd 3"},
		{"kexec_file_load", args(3, 4), "kexec_file_load fd 3"},
		{"kexec_load", args(0x1000, 1), "kexec_load"},
		{"mount", args(0xc0, 0xc1, 0xc2, unix.MS_BIND|unix.MS_REC), "mount MS_BIND|MS_REC"},
		{"mount", args(0xc0, 0xc1, 0xc2, 0xc0ed0000|unix.MS_RDONLY), "mount MS_RDONLY"},
		{"mount", args(0xc0, 0xc1, 0xc2, 0), "mount"},
		{"mount", args(0, 0, 0, 1<<40), "mount 0x10000000000"},
		{"umount2", args(0xc0, unix.MNT_DETACH), "umount2 MNT_DETACH"},
		{"open_tree", args(0xffffff9c, 0xc0, unix.OPEN_TREE_CLONE|unix.AT_RECURSIVE), "open_tree OPEN_TREE_CLONE|AT_RECURSIVE"},
		{"fsconfig", args(4, unix.FSCONFIG_SET_STRING), "fsconfig fd 4 FSCONFIG_SET_STRING"},
		{"fsmount", args(4), "fsmount fd 4"},
		{"keyctl", args(unix.KEYCTL_JOIN_SESSION_KEYRING, 0), "keyctl KEYCTL_JOIN_SESSION_KEYRING"},
		{"keyctl", args(1000), "keyctl op 1000"},
		{"unshare", args(unix.CLONE_NEWUSER | unix.CLONE_NEWNS), "unshare CLONE_NEWUSER|CLONE_NEWNS"},
		{"unshare", args(unix.CLONE_NEWTIME), "unshare CLONE_NEWTIME"},
		{"unshare", args(unix.CLONE_FILES | 0x1), "unshare CLONE_FILES|0x1"},
		{"setns", args(3, unix.CLONE_NEWNET), "setns fd 3 CLONE_NEWNET"},
		{"setns", args(3, 0), "setns fd 3"},
		// clone: only the namespace flags, not the exit signal's bits.
		{"clone", args(unix.CLONE_NEWUSER | unix.CLONE_NEWPID | uint64(unix.SIGCHLD)), "clone CLONE_NEWUSER|CLONE_NEWPID"},
		{"clone", args(unix.CLONE_NEWNET | unix.CLONE_VM | unix.CLONE_THREAD), "clone CLONE_NEWNET"},
		{"clock_settime", args(unix.CLOCK_REALTIME), "clock_settime CLOCK_REALTIME"},
		{"clock_settime", args(77), "clock_settime clock 77"},
		{"reboot", args(0xfee1dead, 672274793, 0x4321fedc), "reboot cmd 0x4321fedc"},
		{"quotactl_fd", args(6), "quotactl_fd fd 6"},
		{"open_by_handle_at", args(3, 0xc0, 0), "open_by_handle_at mount fd 3"},
		{"acct", args(0xc0), "acct"},
		{"syscall 9999", args(1, 2, 3), "syscall 9999"},
	}
	for _, tt := range tests {
		if got := Describe(tt.syscall, tt.args); got != tt.want {
			t.Errorf("Describe(%s, %x) = %q, want %q", tt.syscall, tt.args, got, tt.want)
		}
	}
}

// TestEveryDescriberIsUsed: describers are keyed by syscall name; a typo
// would silently leave a call undescribed.
func TestEveryDescriberIsUsed(t *testing.T) {
	known := map[string]bool{}
	for _, n := range []string{"bpf", "perf_event_open", "ptrace", "process_vm_readv", "process_vm_writev",
		"io_uring_setup", "io_uring_enter", "io_uring_register", "kexec_file_load", "init_module", "finit_module",
		"mount", "umount2", "open_tree", "fsmount", "fsconfig", "keyctl", "unshare", "setns", "clone", "reboot",
		"clock_settime", "quotactl", "quotactl_fd", "open_by_handle_at"} {
		known[n] = true
	}
	for name := range describers {
		if !known[name] {
			t.Errorf("describer for %q, which this test does not know", name)
		}
	}
	if len(describers) != len(known) {
		t.Errorf("%d describers, %d expected", len(describers), len(known))
	}
}

// FuzzDescribe: the arguments come from a hostile process. Whatever they
// are, the target is the syscall's name and a bounded line of text.
func FuzzDescribe(f *testing.F) {
	f.Add("ptrace", uint64(unix.PTRACE_ATTACH), uint64(1), uint64(0), uint64(0))
	f.Add("mount", uint64(0), uint64(0), uint64(0), uint64(0xffffffffffffffff))
	f.Add("clone", uint64(0xffffffffffffffff), uint64(0), uint64(0), uint64(0))
	f.Add("bpf", uint64(1<<63), uint64(0), uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, syscall string, a0, a1, a2, a3 uint64) {
		if _, ok := describers[syscall]; !ok {
			syscall = "unshare"
		}
		got := Describe(syscall, args(a0, a1, a2, a3, a0, a1))
		if !strings.HasPrefix(got, syscall) || len(got) > 512 || !utf8.ValidString(got) || strings.ContainsAny(got, "\n\x00") {
			t.Errorf("Describe(%s, %x %x %x %x) = %q", syscall, a0, a1, a2, a3, got)
		}
	})
}
