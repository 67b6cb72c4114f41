package seccompnotify

import (
	"context"
	"io"
	"testing"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// BenchmarkDeniedCall measures one refused bpf(2) call as the calling
// process sees it (ns/call, timed inside the helper): answered by the
// filter (errno), or notified and answered by Serve here with the event
// written to an audit log (notify), as a jailed server's call is.
func BenchmarkDeniedCall(b *testing.B) { benchmarkCalls(b, "bpf", "EPERM") }

// BenchmarkAllowedCall is the same for getppid(2), which both filters
// allow: what every other call of a jailed server pays.
func BenchmarkAllowedCall(b *testing.B) { benchmarkCalls(b, "getppid", "") }

func benchmarkCalls(b *testing.B, call, errno string) {
	requireRoot(b)
	for _, mode := range []string{"errno", "notify"} {
		b.Run(mode, func(b *testing.B) {
			h := startHelperCalling(b, mode, call, b.N)
			done := make(chan error, 1)
			if h.listener != nil {
				log, err := audit.Open(audit.Server{Name: "bench"}, io.Discard, "")
				if err != nil {
					b.Fatal(err)
				}
				defer log.Close()
				rep := NewReporter(log.Emit)
				defer rep.Close()
				go func() { done <- Serve(context.Background(), h.listener, helperRules, rep.Report) }()
			} else {
				done <- nil
			}
			reply := h.wait(b)
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			if reply.Errnos[errno] != b.N {
				b.Fatalf("calls returned %v, want %d x %q", reply.Errnos, b.N, errno)
			}
			b.ReportMetric(float64(reply.ElapsedNS)/float64(b.N), "ns/call")
		})
	}
}
