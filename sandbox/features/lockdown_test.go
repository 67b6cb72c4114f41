package features

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseLockdown(t *testing.T) {
	for text, want := range map[string]string{
		"[none] integrity confidentiality\n": "none",
		"none [integrity] confidentiality\n": "integrity",
		"none integrity [confidentiality]":   "confidentiality",
	} {
		if got, err := ParseLockdown(text); err != nil || got != want {
			t.Errorf("ParseLockdown(%q) = %q, %v; want %q", text, got, err, want)
		}
	}
	for _, bad := range []string{"", "none integrity", "[]", "[integrity"} {
		if got, err := ParseLockdown(bad); err == nil {
			t.Errorf("ParseLockdown(%q) = %q, want an error", bad, got)
		}
	}
}

func TestParseLSMList(t *testing.T) {
	got := ParseLSMList("lockdown,capability,landlock,yama,bpf\n")
	if want := []string{"lockdown", "capability", "landlock", "yama", "bpf"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := ParseLSMList("\n"); got != nil {
		t.Fatalf("empty list parsed as %q", got)
	}
}

func TestProbeSecurityAt(t *testing.T) {
	if info := probeSecurityAt(t.TempDir(), false); info.Lockdown != LockdownUnknown ||
		info.LockdownNote != "securityfs not mounted" || info.LSMs != nil || info.BPFLSM != nil {
		t.Errorf("unmounted securityfs: %+v", info)
	}

	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("lsm", "capability,landlock,bpf")
	info := probeSecurityAt(dir, true)
	if info.Lockdown != "none" || info.LockdownNote != "lockdown LSM not built in" {
		t.Errorf("no lockdown file: %+v", info)
	}
	if info.BPFLSM == nil || !*info.BPFLSM || info.LSMNote != "" {
		t.Errorf("bpf LSM not seen: %+v", info)
	}

	write("lockdown", "none [integrity] confidentiality\n")
	write("lsm", "capability,landlock")
	info = probeSecurityAt(dir, true)
	if info.Lockdown != "integrity" || info.LockdownNote != "" || info.BPFLSM == nil || *info.BPFLSM {
		t.Errorf("integrity without bpf LSM: %+v", info)
	}
}
