package confine

import (
	"os"
	"testing"

	"github.com/mcpjail/mcpjail/sandbox/features/confinement"
)

func TestPlannedLandlockABI(t *testing.T) {
	for _, tc := range []struct {
		info    confinement.LandlockInfo
		want    int
		wantErr bool
	}{
		{confinement.LandlockInfo{Status: confinement.LandlockEnabled, ABI: 7, UsableABI: 7}, 7, false},
		// The probe's downgrade (signal scoping erratum unfixed) is what counts.
		{confinement.LandlockInfo{Status: confinement.LandlockEnabled, ABI: 6, UsableABI: 5}, 5, false},
		{confinement.LandlockInfo{Status: confinement.LandlockAbsent, Error: "function not implemented"}, 0, false},
		{confinement.LandlockInfo{Status: confinement.LandlockDisabled, Error: "operation not supported"}, 0, false},
		// An unexplained failure must not pass for "no Landlock".
		{confinement.LandlockInfo{Status: confinement.LandlockUnknown, Error: "bad address"}, 0, true},
		{confinement.LandlockInfo{}, 0, true},
	} {
		got, err := plannedLandlockABI(tc.info)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("plannedLandlockABI(%+v) = %d, %v; want %d, error %v", tc.info, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestABIConfigsMatchFeatures: the probe caps the usable ABI at
// confinement.LandlockKnownABI, and buildPlan refuses any ABI abiConfigs lacks.
func TestABIConfigsMatchFeatures(t *testing.T) {
	if newest := len(abiConfigs) - 1; newest != confinement.LandlockKnownABI {
		t.Fatalf("abiConfigs ends at ABI %d, confinement.LandlockKnownABI is %d", newest, confinement.LandlockKnownABI)
	}
}

func TestDetectKernelOnHost(t *testing.T) {
	if os.Getenv("MCPJAIL_EXPECT_HOST") != "1" {
		t.Skip("needs MCPJAIL_EXPECT_HOST=1: compares with this project's machine")
	}
	requireRoot(t)
	got, err := detectKernel()
	if err != nil {
		t.Fatal(err)
	}
	want := kernelFacts{landlockABI: 7, seccomp: true, seccompListener: true, lastCap: 40, canSetPCap: true, canSetIDs: true}
	if got != want {
		t.Errorf("detectKernel() = %+v, want %+v", got, want)
	}
}
