// Package metrics exposes the daemon's Prometheus metrics: jails running,
// events by kind/verdict/layer, kills by reason, egress bytes per jail,
// ring-buffer records lost and profile reloads. Each Metrics owns its own
// registry; nothing is registered globally.
//
// Every label value comes from a small fixed set or from a running jail's
// identity (deleted when the jail ends): paths, addresses and reasons never
// become labels, so a hostile server cannot grow the series count.
package metrics

import (
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// Metric names, exported so tests and dashboards agree on them.
const (
	NameJailsRunning  = "mcpjail_jails_running"
	NameEvents        = "mcpjail_events_total"
	NameKills         = "mcpjail_kills_total"
	NameEgressBytes   = "mcpjail_egress_bytes"
	NameRingbufLost   = "mcpjail_ringbuf_lost_records_total"
	NameReloads       = "mcpjail_profile_reloads_total"
	labelOther        = "other"
	reloadResultOK    = "ok"
	reloadResultError = "error"
)

// Kill reasons: the only values the reason label of mcpjail_kills_total takes.
const (
	KillNetwork      = "network"
	KillExec         = "exec"
	KillFile         = "file"
	KillEgressBudget = "egress_budget"
	KillMemory       = "memory"
	KillOther        = labelOther
)

// Metrics holds the collectors and the registry that serves them. It is
// safe for concurrent use.
type Metrics struct {
	registry *prometheus.Registry
	running  *prometheus.GaugeVec
	events   *prometheus.CounterVec
	kills    *prometheus.CounterVec
	egress   *prometheus.GaugeVec
	reloads  *prometheus.CounterVec
	lost     atomic.Uint64

	mu sync.Mutex
	// jails counts running jails per server name, so a series is deleted
	// when its last jail stops instead of lingering at zero forever.
	jails map[string]int
}

// New returns a Metrics with its own registry, which also carries the Go
// runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		jails:    map[string]int{},
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: NameJailsRunning, Help: "Jails currently running, by server name.",
		}, []string{"server"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameEvents, Help: "Audit events by kind, verdict and enforcing layer (a folded record counts as the events it stands for).",
		}, []string{"kind", "verdict", "layer"}),
		kills: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameKills, Help: "Violations whose action was kill, by reason: network, exec, file, egress_budget, memory, other.",
		}, []string{"reason"}),
		egress: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: NameEgressBytes, Help: "Bytes counted against a running jail's egress budget in its current window.",
		}, []string{"server", "instance"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameReloads, Help: "Config and profile reloads, by result (ok, error).",
		}, []string{"result"}),
	}
	lost := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: NameRingbufLost, Help: "Event records the kernel could not put in the ring buffer.",
	}, func() float64 { return float64(m.lost.Load()) })
	m.registry.MustRegister(m.running, m.events, m.kills, m.egress, m.reloads, lost,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Series that exist from the start, so rate() and alerts see a zero
	// rather than an absent series before the first kill or reload.
	for _, r := range []string{KillNetwork, KillExec, KillFile, KillEgressBudget, KillMemory, KillOther} {
		m.kills.WithLabelValues(r)
	}
	m.reloads.WithLabelValues(reloadResultOK)
	m.reloads.WithLabelValues(reloadResultError)
	return m
}

// Registry is the registry the metrics live in, for callers that add their own.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// JailStarted counts one more running jail of server.
func (m *Metrics) JailStarted(server string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.jails[server]++
	m.running.WithLabelValues(server).Set(float64(m.jails[server]))
}

// JailStopped counts one jail of server fewer. A stop without a start is
// ignored rather than driving the gauge negative.
func (m *Metrics) JailStopped(server string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.jails[server]
	if !ok {
		return
	}
	if n <= 1 {
		delete(m.jails, server)
		m.running.DeleteLabelValues(server)
		return
	}
	m.jails[server] = n - 1
	m.running.WithLabelValues(server).Set(float64(n - 1))
}

// Event counts e, and a kill when e is the violation that caused one.
// Records of kind "kill" restate a kill whose cause is its own event, so
// they are counted as events but not again as kills.
func (m *Metrics) Event(e audit.Event) {
	n := float64(1)
	if e.Count > 1 {
		n = float64(e.Count)
	}
	m.events.WithLabelValues(kindLabel(e.Kind), verdictLabel(e.Verdict), layerLabel(e.Layer)).Add(n)
	if e.Action == audit.ActionKill && e.Kind != audit.KindKill {
		m.kills.WithLabelValues(KillReason(e)).Add(n)
	}
}

// KillReason is the bounded reason label for a killing event.
func KillReason(e audit.Event) string {
	switch e.Kind {
	case audit.KindConnect, audit.KindSendmsg, audit.KindUnixConnect, audit.KindSocket, audit.KindAccept, audit.KindDNS:
		return KillNetwork
	case audit.KindExec:
		return KillExec
	case audit.KindOpen:
		return KillFile
	case audit.KindEgressBudget:
		return KillEgressBudget
	case audit.KindLimit:
		if e.Target == "memory" {
			return KillMemory
		}
	}
	return KillOther
}

// SetEgressBytes records the bytes a running jail has sent in its budget window.
func (m *Metrics) SetEgressBytes(server, instance string, n uint64) {
	m.egress.WithLabelValues(server, instance).Set(float64(n))
}

// DropJail deletes the per-jail series of an ended jail.
func (m *Metrics) DropJail(server, instance string) {
	m.egress.DeleteLabelValues(server, instance)
}

// SetLost records the kernel's cumulative count of lost ring-buffer records.
// The count lives in a pinned map, so it carries on across daemon restarts.
func (m *Metrics) SetLost(n uint64) { m.lost.Store(n) }

// Reload counts a reload of the config and profiles; err is its outcome.
func (m *Metrics) Reload(err error) {
	result := reloadResultOK
	if err != nil {
		result = reloadResultError
	}
	m.reloads.WithLabelValues(result).Inc()
}

// kindLabel, verdictLabel and layerLabel map anything outside the known
// values to "other": an event's fields may come from a peer on the socket.
func kindLabel(k audit.Kind) string {
	switch k {
	case audit.KindStart, audit.KindExit, audit.KindKill, audit.KindExec, audit.KindOpen, audit.KindConnect,
		audit.KindSendmsg, audit.KindUnixConnect, audit.KindSocket, audit.KindEgressBudget, audit.KindAccept, audit.KindDNS,
		audit.KindLimit, audit.KindRefuse, audit.KindDegraded, audit.KindLost, audit.KindFork, audit.KindTaskExit:
		return string(k)
	}
	return labelOther
}

func verdictLabel(v audit.Verdict) string {
	switch v {
	case audit.VerdictAllow, audit.VerdictDeny, audit.VerdictAudit:
		return string(v)
	}
	return labelOther
}

func layerLabel(l audit.Layer) string {
	switch l {
	case audit.LayerLandlock, audit.LayerBPF, audit.LayerCgroup, audit.LayerSeccomp, audit.LayerMcpjail, audit.LayerBPFLSM, audit.LayerKernel:
		return string(l)
	}
	return labelOther
}
