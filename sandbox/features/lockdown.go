package features

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// LockdownUnknown is the lockdown mode when it cannot be read.
const LockdownUnknown = "unknown"

// SecurityInfo is the kernel lockdown mode and the active LSMs, both read from
// securityfs. Doctor does not mount securityfs, so both may be unknown.
type SecurityInfo struct {
	// Lockdown is none, integrity, confidentiality or unknown.
	Lockdown string `json:"lockdown"`
	// LSMs lists the active security modules in order; nil when unknown.
	LSMs []string `json:"lsms"`
	// BPFLSM says whether "bpf" is among the active LSMs; nil when unknown.
	BPFLSM *bool `json:"bpf_lsm"`
	// LockdownNote and LSMNote explain an unknown or inferred value
	// ("securityfs not mounted").
	LockdownNote string `json:"lockdown_note,omitempty"`
	LSMNote      string `json:"lsm_note,omitempty"`
}

// ParseLockdown picks the selected mode out of /sys/kernel/security/lockdown,
// which reads like "none [integrity] confidentiality".
func ParseLockdown(text string) (string, error) {
	for _, word := range strings.Fields(text) {
		if mode, ok := strings.CutPrefix(word, "["); ok {
			if mode, ok = strings.CutSuffix(mode, "]"); ok && mode != "" {
				return mode, nil
			}
		}
	}
	return "", fmt.Errorf("no selected lockdown mode in %q", strings.TrimSpace(text))
}

// ParseLSMList splits /sys/kernel/security/lsm ("lockdown,capability,bpf").
func ParseLSMList(text string) []string {
	var lsms []string
	for _, name := range strings.Split(strings.TrimSpace(text), ",") {
		if name = strings.TrimSpace(name); name != "" {
			lsms = append(lsms, name)
		}
	}
	return lsms
}

// ProbeSecurity reads lockdown and the LSM list when securityfs is mounted.
// securityfsMounted comes from ProbePseudoFS.
func ProbeSecurity(securityfsMounted bool) SecurityInfo {
	return probeSecurityAt(SecurityFSPath, securityfsMounted)
}

func probeSecurityAt(dir string, mounted bool) SecurityInfo {
	info := SecurityInfo{Lockdown: LockdownUnknown}
	if !mounted {
		info.LockdownNote = "securityfs not mounted"
		info.LSMNote = info.LockdownNote
		return info
	}
	switch data, err := os.ReadFile(path.Join(dir, "lockdown")); {
	case errors.Is(err, fs.ErrNotExist):
		// The file exists only when the lockdown LSM is built in.
		info.Lockdown = "none"
		info.LockdownNote = "lockdown LSM not built in"
	case err != nil:
		info.LockdownNote = fmt.Sprintf("read lockdown: %v", err)
	default:
		mode, err := ParseLockdown(string(data))
		if err != nil {
			info.LockdownNote = err.Error()
		} else {
			info.Lockdown = mode
		}
	}
	if data, err := os.ReadFile(path.Join(dir, "lsm")); err != nil {
		info.LSMNote = fmt.Sprintf("read lsm list: %v", err)
	} else {
		info.LSMs = ParseLSMList(string(data))
		bpf := slices.Contains(info.LSMs, "bpf")
		info.BPFLSM = &bpf
	}
	return info
}
