package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// serve starts m on a loopback port chosen by the kernel and returns the
// scrape URL; the server stops, and is checked to stop cleanly, at cleanup.
func serve(t *testing.T, m *Metrics) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.ServeListener(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeListener after cancel: %v", err)
		}
	})
	return "http://" + ln.Addr().String() + "/metrics"
}

// scrape fetches url and parses the text exposition strictly.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse exposition: %v", err)
	}
	return fams
}

// value is the value of the series of name whose labels are exactly want;
// found is false when no such series is exposed.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (v float64, found bool) {
	mf, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			if want[l.GetName()] != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

func mustValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string, want float64) {
	t.Helper()
	got, ok := value(fams, name, labels)
	if !ok {
		t.Errorf("%s%v: not exposed", name, labels)
		return
	}
	if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func TestScrapeShowsCountersMove(t *testing.T) {
	m := New()
	url := serve(t, m)

	before := scrape(t, url)
	mustValue(t, before, NameKills, map[string]string{"reason": KillNetwork}, 0)
	mustValue(t, before, NameReloads, map[string]string{"result": "error"}, 0)
	mustValue(t, before, NameRingbufLost, nil, 0)

	fs := audit.Server{Name: "filesystem", Instance: "a1"}
	m.JailStarted(fs.Name)
	m.JailStarted(fs.Name)
	m.JailStarted("memory")
	m.JailStopped("memory")
	connect := audit.Event{Server: fs, Kind: audit.KindConnect, Target: "127.0.0.2:80/tcp", Verdict: audit.VerdictDeny, Layer: audit.LayerBPF, Action: audit.ActionKill}
	m.Event(connect)
	folded := connect
	folded.Action, folded.Count = audit.ActionNone, 4
	m.Event(folded)
	// The kill record restating the connect's kill is an event, not a second kill.
	m.Event(audit.Event{Server: fs, Kind: audit.KindKill, Target: "127.0.0.2:80/tcp", Verdict: audit.VerdictDeny, Layer: audit.LayerBPF, Action: audit.ActionKill})
	m.Event(audit.Event{Server: fs, Kind: audit.KindLimit, Target: "memory", Verdict: audit.VerdictDeny, Layer: audit.LayerCgroup, Action: audit.ActionKill})
	m.SetEgressBytes(fs.Name, fs.Instance, 1234)
	m.SetLost(7)
	m.Reload(nil)
	m.Reload(errors.New("profile x: unknown key"))
	m.Reload(errors.New("again"))

	after := scrape(t, url)
	mustValue(t, after, NameJailsRunning, map[string]string{"server": "filesystem"}, 2)
	if _, ok := value(after, NameJailsRunning, map[string]string{"server": "memory"}); ok {
		t.Errorf("the series of a server with no jail left is still exposed")
	}
	mustValue(t, after, NameEvents, map[string]string{"kind": "connect", "verdict": "deny", "layer": "bpf"}, 1+4)
	mustValue(t, after, NameEvents, map[string]string{"kind": "kill", "verdict": "deny", "layer": "bpf"}, 1)
	mustValue(t, after, NameKills, map[string]string{"reason": KillNetwork}, 1)
	mustValue(t, after, NameKills, map[string]string{"reason": KillMemory}, 1)
	mustValue(t, after, NameKills, map[string]string{"reason": KillOther}, 0)
	mustValue(t, after, NameEgressBytes, map[string]string{"server": "filesystem", "instance": "a1"}, 1234)
	mustValue(t, after, NameRingbufLost, nil, 7)
	mustValue(t, after, NameReloads, map[string]string{"result": "ok"}, 1)
	mustValue(t, after, NameReloads, map[string]string{"result": "error"}, 2)

	m.DropJail(fs.Name, fs.Instance)
	m.JailStopped(fs.Name)
	m.JailStopped(fs.Name)
	m.JailStopped(fs.Name) // one stop too many must not go negative
	gone := scrape(t, url)
	if _, ok := value(gone, NameEgressBytes, map[string]string{"server": "filesystem", "instance": "a1"}); ok {
		t.Errorf("egress series still exposed after DropJail")
	}
	if mf, ok := gone[NameJailsRunning]; ok && len(mf.GetMetric()) > 0 {
		t.Errorf("jails_running still has series after every jail stopped: %v", mf.GetMetric())
	}
}

func TestKillReasons(t *testing.T) {
	for _, c := range []struct {
		kind   audit.Kind
		target string
		want   string
	}{
		{audit.KindConnect, "", KillNetwork}, {audit.KindSendmsg, "", KillNetwork}, {audit.KindUnixConnect, "", KillNetwork},
		{audit.KindSocket, "", KillNetwork}, {audit.KindDNS, "", KillNetwork}, {audit.KindExec, "", KillExec},
		{audit.KindOpen, "", KillFile}, {audit.KindEgressBudget, "", KillEgressBudget},
		{audit.KindLimit, "memory", KillMemory}, {audit.KindLimit, "pids", KillOther}, {"made-up", "", KillOther},
	} {
		if got := KillReason(audit.Event{Kind: c.kind, Target: c.target}); got != c.want {
			t.Errorf("KillReason(%s %s) = %q, want %q", c.kind, c.target, got, c.want)
		}
	}
}

// A hostile server decides paths, addresses and reasons; none of them may
// become a label, and unknown kinds/verdicts/layers fold into "other".
func TestLabelCardinalityStaysBounded(t *testing.T) {
	const distinct = 2000
	m := New()
	url := serve(t, m)
	for i := range distinct {
		m.Event(audit.Event{Server: audit.Server{Name: "s", Instance: "i"}, Kind: audit.KindOpen,
			Target: fmt.Sprintf("/home/u/.ssh/id_%d", i), Reason: fmt.Sprintf("reason %d", i),
			Verdict: audit.VerdictDeny, Layer: audit.LayerLandlock, Action: audit.ActionKill})
		m.Event(audit.Event{Kind: audit.Kind(fmt.Sprintf("kind%d", i)), Verdict: audit.Verdict(fmt.Sprintf("v%d", i)),
			Layer: audit.Layer(fmt.Sprintf("l%d", i)), Action: audit.ActionKill})
	}
	fams := scrape(t, url)
	events := fams[NameEvents].GetMetric()
	if len(events) != 2 {
		t.Errorf("%s has %d series after %d distinct paths and labels, want 2", NameEvents, len(events), distinct)
	}
	mustValue(t, fams, NameEvents, map[string]string{"kind": "open", "verdict": "deny", "layer": "landlock"}, distinct)
	mustValue(t, fams, NameEvents, map[string]string{"kind": "other", "verdict": "other", "layer": "other"}, distinct)
	mustValue(t, fams, NameKills, map[string]string{"reason": KillFile}, distinct)
	mustValue(t, fams, NameKills, map[string]string{"reason": KillOther}, distinct)
	if n := len(fams[NameKills].GetMetric()); n != 6 {
		t.Errorf("%s has %d series, want the 6 fixed reasons", NameKills, n)
	}
	for name, mf := range fams {
		for _, met := range mf.GetMetric() {
			for _, l := range met.GetLabel() {
				if strings.Contains(l.GetValue(), "/") {
					t.Errorf("%s carries a path-like label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

func TestServeReturnsListenErrorWithAddress(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = New().Serve(ctx, addr, nil)
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Serve on a busy address = %v, want an error naming %s", err, addr)
	}
}

func TestServeStopsOnContext(t *testing.T) {
	m := New()
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.ServeListener(ctx, ln, nil) }()
	scrape(t, "http://"+ln.Addr().String()+"/metrics")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("ServeListener after cancel = %v, want nil", err)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after the context ended", ln.Addr())
	}
}

// Two Metrics do not share state: nothing is registered globally.
func TestInstancesAreIndependent(t *testing.T) {
	a, b := New(), New()
	a.Reload(nil)
	fa, fb := scrape(t, serve(t, a)), scrape(t, serve(t, b))
	mustValue(t, fa, NameReloads, map[string]string{"result": "ok"}, 1)
	mustValue(t, fb, NameReloads, map[string]string{"result": "ok"}, 0)
}
