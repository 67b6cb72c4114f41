package initstep

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// roundTrip sends s through a pipe as the launcher does and reads it back.
func roundTrip(t *testing.T, s *Spec) (*Spec, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := WriteSpec(w, s); err != nil {
		t.Fatal(err)
	}
	return readSpec(r)
}

func TestSpecRoundTrip(t *testing.T) {
	in := &Spec{Path: "/bin/true", Argv: []string{"true"}, Env: []string{"A=b"}, Dir: "/tmp"}
	out, err := roundTrip(t, in)
	if err != nil {
		t.Fatal(err)
	}
	if out.Version != Version || out.Path != in.Path || out.Argv[0] != "true" || out.Env[0] != "A=b" || out.Dir != "/tmp" {
		t.Errorf("read back %+v, sent %+v", out, in)
	}
}

func TestSpecRefusals(t *testing.T) {
	read := func(text string) error {
		_, err := readSpec(strings.NewReader(text))
		return err
	}
	v := strconv.Itoa(Version)
	for name, c := range map[string]struct{ text, want string }{
		"another build": {`{"version":999,"path":"/bin/true","argv":["true"]}`, "same build"},
		"no version":    {`{"path":"/bin/true","argv":["true"]}`, "version 0"},
		"no command":    {`{"version":` + v + `,"argv":["true"]}`, "no command"},
		"no argv":       {`{"version":` + v + `,"path":"/bin/true"}`, "no command"},
		"not JSON":      {`version 1`, "decode"},
		"too large":     {`{"version":` + v + `,"env":["` + strings.Repeat("x", maxSpecSize) + `"]}`, "larger than"},
	} {
		if err := read(c.text); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
	}
}

func TestStatusCode(t *testing.T) {
	// Wait statuses as the kernel encodes them: exit code in bits 8-15, a
	// terminating signal in bits 0-6.
	for ws, want := range map[syscall.WaitStatus]int{0: 0, 1 << 8: 1, 42 << 8: 42, syscall.WaitStatus(syscall.SIGTERM): 143, syscall.WaitStatus(syscall.SIGKILL): 137} {
		if got := StatusCode(ws); got != want {
			t.Errorf("StatusCode(%#x) = %d, want %d", int(ws), got, want)
		}
	}
}
