package main

import (
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []time.Duration
		want summary
	}{
		{"empty", nil, summary{}},
		{"odd", []time.Duration{3, 1, 2}, summary{n: 3, median: 2, min: 1, max: 3}},
		{"even", []time.Duration{4, 1, 3, 2}, summary{n: 4, median: 2, min: 1, max: 4}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := summarize(c.in); got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}
