package confine

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/features/confinement"
)

// kernelFacts is what the plan depends on, measured once by detectKernel.
type kernelFacts struct {
	landlockABI int  // 0: no Landlock
	seccomp     bool // seccomp filters are available
	// seccompListener: the filter can hand its refusals to a supervisor
	// (confinement.SeccompListener); seccompListenerWhy says why not.
	seccompListener    bool
	seccompListenerWhy string
	lastCap            int  // highest capability number this kernel knows
	canSetPCap         bool // CAP_SETPCAP is effective: bounding set and securebits can change
	canSetIDs          bool // CAP_SETUID and CAP_SETGID are effective
}

// detectKernel asks package features, where every kernel probe of mcpjail
// lives, so that confinement and `mcpjail doctor` cannot disagree.
func detectKernel() (kernelFacts, error) {
	var k kernelFacts
	var err error
	if k.landlockABI, err = plannedLandlockABI(confinement.ProbeLandlock()); err != nil {
		return k, err
	}
	if k.seccomp, err = confinement.SeccompAvailable(); err != nil {
		return k, err
	}
	if k.seccomp {
		if k.seccompListener, k.seccompListenerWhy, err = confinement.SeccompListener(); err != nil {
			return k, err
		}
	}
	if k.lastCap, err = confinement.LastCap(); err != nil {
		return k, err
	}
	eff, err := confinement.EffectiveCaps()
	if err != nil {
		return k, err
	}
	k.canSetPCap = eff&(1<<unix.CAP_SETPCAP) != 0
	k.canSetIDs = eff&(1<<unix.CAP_SETUID) != 0 && eff&(1<<unix.CAP_SETGID) != 0
	return k, nil
}

// plannedLandlockABI is the ABI to plan for: the probe's usable ABI (lowered
// to 5 without the signal scoping erratum fix, as go-landlock does, and
// capped at what go-landlock knows), 0 when the kernel has no Landlock or
// disabled it at boot. A failed query is an error, not "no Landlock".
func plannedLandlockABI(info confinement.LandlockInfo) (int, error) {
	switch info.Status {
	case confinement.LandlockEnabled:
		return info.UsableABI, nil
	case confinement.LandlockAbsent, confinement.LandlockDisabled:
		return 0, nil
	default:
		return 0, fmt.Errorf("landlock ABI version: %s", info.Error)
	}
}
