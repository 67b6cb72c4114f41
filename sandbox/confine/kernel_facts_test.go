package confine

import (
	"os"
	"testing"

	"github.com/mcpjail/mcpjail/sandbox/features"
)

func TestPlannedLandlockABI(t *testing.T) {
	for _, tc := range []struct {
		info    features.LandlockInfo
		want    int
		wantErr bool
	}{
		{features.LandlockInfo{Status: features.LandlockEnabled, ABI: 7, UsableABI: 7}, 7, false},
		// The probe's downgrade (signal scoping erratum unfixed) is what counts.
		{features.LandlockInfo{Status: features.LandlockEnabled, ABI: 6, UsableABI: 5}, 5, false},
		{features.LandlockInfo{Status: features.LandlockAbsent, Error: "function not implemented"}, 0, false},
		{features.LandlockInfo{Status: features.LandlockDisabled, Error: "operation not supported"}, 0, false},
		// An unexplained failure must not pass for "no Landlock".
		{features.LandlockInfo{Status: features.LandlockUnknown, Error: "bad address"}, 0, true},
		{features.LandlockInfo{}, 0, true},
	} {
		got, err := plannedLandlockABI(tc.info)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("plannedLandlockABI(%+v) = %d, %v; want %d, error %v", tc.info, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestABIConfigsMatchFeatures: the probe caps the usable ABI at
// features.LandlockKnownABI, and buildPlan refuses any ABI abiConfigs lacks.
func TestABIConfigsMatchFeatures(t *testing.T) {
	if newest := len(abiConfigs) - 1; newest != features.LandlockKnownABI {
		t.Fatalf("abiConfigs ends at ABI %d, features.LandlockKnownABI is %d", newest, features.LandlockKnownABI)
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
