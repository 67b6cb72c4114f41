package sockdiag

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/cgroup"
)

// helperEnv makes the test binary act as a process holding one TCP
// connection (to the address in the variable) and reporting how it ended.
const helperEnv = "SOCKDIAG_HELPER_ADDR"

func TestMain(m *testing.M) {
	if addr := os.Getenv(helperEnv); addr != "" {
		os.Exit(holdConnection(addr))
	}
	os.Exit(m.Run())
}

func holdConnection(addr string) int {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		fmt.Println("dial:", err)
		return 1
	}
	fmt.Println("connected")
	_, err = c.Read(make([]byte, 1)) // blocks until the socket is destroyed
	fmt.Println("read:", err)
	return 0
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root (cgroups and sock_diag destroy); CI=true makes this a failure")
	}
	t.Skip("needs root (cgroups and sock_diag destroy)")
}

// TestDestroyCgroupSockets: the connection of a process in the cgroup is
// aborted (its read fails with ECONNABORTED) while the test's own
// connection to the same listener, outside the cgroup, survives.
func TestDestroyCgroupSockets(t *testing.T) {
	requireRoot(t)
	if cgroup.DetectMode() == cgroup.ModeV1 || cgroup.DetectMode() == cgroup.ModeNone {
		t.Skip("needs a cgroup v2 hierarchy: socket cgroup ids are v2 ids")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	grp, _, err := cgroup.Create(fmt.Sprintf("sockdiag-test-%d", os.Getpid()), cgroup.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer grp.Remove(t.Context())
	dir, err := grp.OpenV2()
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()

	outside, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer outside.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+ln.Addr().String())
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "connected" {
		t.Fatalf("helper did not connect: %q", lines.Text())
	}
	n, err := DestroyCgroupSockets(grp.ID())
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("destroyed %d sockets, want the helper's one", n)
	}
	done := make(chan string, 1)
	go func() {
		lines.Scan()
		done <- lines.Text()
	}()
	select {
	case got := <-done:
		if !strings.Contains(got, "connection abort") {
			t.Errorf("helper's read ended with %q, want ECONNABORTED", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the helper's connection was not destroyed")
	}
	_ = outside.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := outside.Read(make([]byte, 1)); !os.IsTimeout(err) {
		t.Errorf("the connection outside the cgroup was affected: %v", err)
	}
}

func TestRequestLayout(t *testing.T) {
	msg := request(unix.SOCK_DIAG_BY_FAMILY, 0x301, 7, 2, 6, nil, 0x1122334455667788)
	if got := native.Uint32(msg); int(got) != len(msg) || len(msg) != 16+sizeofReqV2+16 {
		t.Fatalf("length %d / %d, want header+req+attr = %d", got, len(msg), 16+sizeofReqV2+16)
	}
	attr := msg[16+sizeofReqV2:]
	if native.Uint16(attr) != 16 || native.Uint16(attr[2:]) != inetDiagReqBytecode {
		t.Errorf("attribute header % x", attr[:4])
	}
	bc := attr[4:]
	if bc[0] != inetDiagBCCgroup || bc[1] != 12 || native.Uint16(bc[2:]) != 16 || native.Uint64(bc[4:]) != 0x1122334455667788 {
		t.Errorf("bytecode % x", bc)
	}
	if native.Uint32(msg[16+4:]) != allStates || msg[16] != 2 || msg[17] != 6 {
		t.Errorf("request % x", msg[16:24])
	}
}
