package bpf

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf/link"
)

// closeLinks detaches links concurrently. Detaching a tracepoint or cgroup
// program waits for an RCU grace period (~40 ms here); one after the other,
// a run's links would add most of a second to every server's exit, while
// concurrent detaches share grace periods.
func closeLinks(what string, links []link.Link) error {
	errs := make([]error, len(links))
	var wg sync.WaitGroup
	for i, lk := range links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := lk.Close(); err != nil {
				errs[i] = fmt.Errorf("detach %s: %w", what, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
