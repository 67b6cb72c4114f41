package main

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

func TestParseElapsed(t *testing.T) {
	for _, c := range []struct {
		name, out string
		want      time.Duration
		wantErr   bool
	}{
		{"alone", "elapsed_ns=1500\n", 1500, false},
		{"after other lines", "warning: x\nelapsed_ns=42\n", 42, false},
		{"no newline", "elapsed_ns=7", 7, false},
		{"missing", "ready 12\n", 0, true},
		{"empty", "", 0, true},
		{"not a number", "elapsed_ns=soon\n", 0, true},
		{"zero", "elapsed_ns=0\n", 0, true},
		{"negative", "elapsed_ns=-5\n", 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseElapsed(c.out)
			if (err != nil) != c.wantErr || got != c.want {
				t.Errorf("parseElapsed(%q) = %v, %v; want %v, error %v", c.out, got, err, c.want, c.wantErr)
			}
		})
	}
}

func TestParseSections(t *testing.T) {
	for _, c := range []struct {
		only    string
		want    []string
		wantErr bool
	}{
		{"", sectionNames, false},
		{"syscalls", []string{"syscalls"}, false},
		{"startup, syscalls", []string{"startup", "syscalls"}, false},
		{"syscall", nil, true},
		{"syscalls,", nil, true},
	} {
		got, err := parseSections(c.only)
		if (err != nil) != c.wantErr {
			t.Errorf("parseSections(%q) error = %v, want error %v", c.only, err, c.wantErr)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("parseSections(%q) = %v, want %v", c.only, got, c.want)
		}
		for _, s := range c.want {
			if !got[s] {
				t.Errorf("parseSections(%q) lacks %q", c.only, s)
			}
		}
	}
}

func TestDescribeNew(t *testing.T) {
	before := map[ebpf.ProgramID]string{1: "TracePoint other"}
	after := map[ebpf.ProgramID]string{1: "TracePoint other", 5: "CGroupSockAddr conn4", 6: "TracePoint opn_in", 7: "TracePoint opn_in"}
	if got, want := describeNew(before, after), "3 (CGroupSockAddr conn4, TracePoint opn_in x2)"; got != want {
		t.Errorf("describeNew = %q, want %q", got, want)
	}
	if got := describeNew(after, before); got != "none" {
		t.Errorf("describeNew with nothing new = %q, want none", got)
	}
}
