package cgroup

import (
	"strings"
	"testing"
)

func TestJailIn(t *testing.T) {
	for _, tc := range []struct {
		name, lines, want string
		wantErr           bool
	}{
		{"pure v2, not jailed", "0::/user.slice/user-1000.slice/session-2.scope\n", "", false},
		{"pure v2, daemon jail", "0::/system.slice/mcpjail.service/mcpjail/github-0a1b2c3d4e5f\n",
			"/system.slice/mcpjail.service/mcpjail/github-0a1b2c3d4e5f", false},
		{"below a jail", "0::/mcpjail/fs-000000000001/child\n", "/mcpjail/fs-000000000001", false},
		{"the daemon's own leaf", "0::/system.slice/mcpjail.service/daemon\n", "", false},
		{"the parent itself is no jail", "0::/system.slice/mcpjail.service/mcpjail\n", "", false},
		{"hybrid, jailed in v1 only", "9:memory:/user/mcpjail/x-1\n0::/user\n", "/user/mcpjail/x-1", false},
		{"a unit named mcpjail-something", "0::/system.slice/mcpjail-x.service/y\n", "", false},
		{"malformed", "garbage\n", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := jailIn(strings.NewReader(tc.lines))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("jailIn(%q) = %q, %v; want %q (error %v)", tc.lines, got, err, tc.want, tc.wantErr)
			}
		})
	}
}
