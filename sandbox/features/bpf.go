package features

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// BPF probe names, in libbpf section style. Needs.BPFProbes refers to these.
const (
	ProbeConnect4    = "cgroup/connect4"
	ProbeConnect6    = "cgroup/connect6"
	ProbeSendmsg4    = "cgroup/sendmsg4"
	ProbeSendmsg6    = "cgroup/sendmsg6"
	ProbeConnectUnix = "cgroup/connect_unix"
	ProbeSendmsgUnix = "cgroup/sendmsg_unix"
	ProbeSockCreate  = "cgroup/sock_create"
	ProbeSKBEgress   = "cgroup_skb/egress"
	ProbeTracepoint  = "tracepoint/syscalls/sys_enter_openat"
	ProbeTPBTF       = "tp_btf/sched_process_exec"
	ProbeLSM         = "lsm/file_open"
	ProbeLSMExec     = "lsm/bprm_check_security"
	ProbeLSMConnect  = "lsm/socket_connect"
	ProbeFentry      = "fentry/bpf_fentry_test1"
	ProbeRingBuf     = "map/ringbuf"
	ProbeSendSignal  = "helper/bpf_send_signal"
)

// Failure stages of a probe.
const (
	StageLoad   = "load"
	StageAttach = "attach"
	// StageNotProbed: the probe did not run (the context ended first).
	StageNotProbed = "not probed"
)

// probeProgName is the kernel name of every probe program, so that a leftover
// would be recognisable in bpftool output.
const probeProgName = "mcpjail_probe"

// EnforcementProbes are the probes the eBPF enforcement layer of DESIGN.md
// depends on: the cgroup network hooks, the exec/open tracepoint with
// bpf_send_signal for kills, and the ring buffer for events. The bpf package
// owner keeps this list in step with what it loads.
func EnforcementProbes() []string {
	return []string{
		ProbeConnect4, ProbeConnect6, ProbeSendmsg4, ProbeSendmsg6,
		ProbeConnectUnix, ProbeSendmsgUnix, ProbeSockCreate, ProbeSKBEgress,
		ProbeTracepoint, ProbeRingBuf, ProbeSendSignal,
	}
}

// LSMProbes are the hooks of the optional BPF-LSM deny layer (bpf/lsm.bpf.c):
// where all of them load and attach, the layer is active.
func LSMProbes() []string { return []string{ProbeLSMExec, ProbeLSM, ProbeLSMConnect} }

// ProbeResult is the outcome of one BPF probe.
type ProbeResult struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Stage is where a failed probe failed: load or attach.
	Stage string `json:"stage,omitempty"`
	// Error is the errno as text ("operation not permitted") or, when the
	// failure carries no errno, the error message.
	Error string `json:"error,omitempty"`
	// Detail is the whole error chain, for debugging.
	Detail string `json:"detail,omitempty"`
	// Note qualifies a success, e.g. when attachment could not be tried.
	Note string `json:"note,omitempty"`
}

// BPFProbeEnv is what the BPF probes may use.
type BPFProbeEnv struct {
	// CgroupParent is a cgroup v2 directory under which a temporary group is
	// created to attach cgroup programs to; empty when there is none, and
	// CgroupParentErr says why.
	CgroupParent    string
	CgroupParentErr string
	// TraceFS says tracefs is mounted, which tracepoint attachment needs.
	TraceFS bool
}

// attachFunc attaches a loaded probe program. It returns a link to close, or
// a note when attachment was not attempted.
type attachFunc func(prog *ebpf.Program) (l link.Link, note string, err error)

type programProbe struct {
	name   string
	spec   ebpf.ProgramSpec
	attach attachFunc
}

// namedProbe is any probe ProbeBPF runs.
type namedProbe struct {
	name string
	run  func() ProbeResult
}

// ProbeBPF loads (and where meaningful attaches) one tiny program per hook the
// jail may use, then closes and detaches everything. Cgroup programs attach to
// a temporary group under env.CgroupParent that is removed before returning.
// The error reports a failure to clean up, which the caller must surface.
func ProbeBPF(ctx context.Context, env BPFProbeEnv) (results []ProbeResult, cleanupErr error) {
	cgroupDir, cgroupErr := "", env.CgroupParentErr
	if ctx.Err() != nil {
		cgroupErr = "not created: " + ctx.Err().Error()
	} else if env.CgroupParent != "" {
		dir, remove, err := createTempCgroup(env.CgroupParent)
		if err != nil {
			cgroupErr = err.Error()
		} else {
			cgroupDir = dir
			defer func() { cleanupErr = remove() }()
		}
	} else if cgroupErr == "" {
		cgroupErr = "no cgroup v2 hierarchy mounted"
	}

	var probes []namedProbe
	for _, p := range programProbes(cgroupDir, cgroupErr, env.TraceFS) {
		probes = append(probes, namedProbe{p.name, func() ProbeResult { return runProgramProbe(p) }})
	}
	probes = append(probes, namedProbe{ProbeRingBuf, probeRingBuf}, namedProbe{ProbeSendSignal, probeSendSignal})
	for _, p := range probes {
		if err := ctx.Err(); err != nil {
			results = append(results, failed(p.name, StageNotProbed, err))
			continue
		}
		results = append(results, p.run())
	}
	return results, nil
}

func programProbes(cgroupDir, cgroupErr string, traceFS bool) []programProbe {
	allow := asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()}
	zero := asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	cgroupProbe := func(name string, pt ebpf.ProgramType, at ebpf.AttachType) programProbe {
		return programProbe{
			name:   name,
			spec:   ebpf.ProgramSpec{Type: pt, AttachType: at, Instructions: allow},
			attach: attachCgroup(cgroupDir, cgroupErr, at),
		}
	}
	return []programProbe{
		cgroupProbe(ProbeConnect4, ebpf.CGroupSockAddr, ebpf.AttachCGroupInet4Connect),
		cgroupProbe(ProbeConnect6, ebpf.CGroupSockAddr, ebpf.AttachCGroupInet6Connect),
		cgroupProbe(ProbeSendmsg4, ebpf.CGroupSockAddr, ebpf.AttachCGroupUDP4Sendmsg),
		cgroupProbe(ProbeSendmsg6, ebpf.CGroupSockAddr, ebpf.AttachCGroupUDP6Sendmsg),
		cgroupProbe(ProbeConnectUnix, ebpf.CGroupSockAddr, ebpf.AttachCgroupUnixConnect),
		cgroupProbe(ProbeSendmsgUnix, ebpf.CGroupSockAddr, ebpf.AttachCgroupUnixSendmsg),
		cgroupProbe(ProbeSockCreate, ebpf.CGroupSock, ebpf.AttachCGroupInetSockCreate),
		cgroupProbe(ProbeSKBEgress, ebpf.CGroupSKB, ebpf.AttachCGroupInetEgress),
		{
			name: ProbeTracepoint,
			spec: ebpf.ProgramSpec{Type: ebpf.TracePoint, Instructions: zero},
			attach: func(prog *ebpf.Program) (link.Link, string, error) {
				// The event id comes from tracefs; doctor does not mount it.
				if !traceFS {
					return nil, "attach not probed: tracefs not mounted; run and daemon mount it", nil
				}
				l, err := link.Tracepoint("syscalls", "sys_enter_openat", prog, nil)
				return l, "", err
			},
		},
		{
			name: ProbeTPBTF,
			spec: ebpf.ProgramSpec{Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp,
				AttachTo: "sched_process_exec", Instructions: zero},
			attach: func(prog *ebpf.Program) (link.Link, string, error) {
				l, err := link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceRawTp})
				return l, "", err
			},
		},
		// Returning 0 allows everything while a probe is attached.
		lsmProbe(ProbeLSMExec, "bprm_check_security", zero),
		lsmProbe(ProbeLSM, "file_open", zero),
		lsmProbe(ProbeLSMConnect, "socket_connect", zero),
		{
			// bpf_fentry_test1 exists for BPF self-tests: nothing calls it in
			// normal operation, so attaching there disturbs nothing.
			name: ProbeFentry,
			spec: ebpf.ProgramSpec{Type: ebpf.Tracing, AttachType: ebpf.AttachTraceFEntry,
				AttachTo: "bpf_fentry_test1", Instructions: zero},
			attach: func(prog *ebpf.Program) (link.Link, string, error) {
				l, err := link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceFEntry})
				return l, "", err
			},
		},
	}
}

// lsmProbe loads and attaches a BPF LSM program on hook.
func lsmProbe(name, hook string, insns asm.Instructions) programProbe {
	return programProbe{
		name: name,
		spec: ebpf.ProgramSpec{Type: ebpf.LSM, AttachType: ebpf.AttachLSMMac, AttachTo: hook, Instructions: insns},
		attach: func(prog *ebpf.Program) (link.Link, string, error) {
			l, err := link.AttachLSM(link.LSMOptions{Program: prog})
			return l, "", err
		},
	}
}

// attachCgroup attaches to the temporary cgroup, or explains why it cannot.
func attachCgroup(dir, whyNoDir string, at ebpf.AttachType) attachFunc {
	return func(prog *ebpf.Program) (link.Link, string, error) {
		if dir == "" {
			return nil, "", fmt.Errorf("no cgroup to attach to: %s", whyNoDir)
		}
		l, err := link.AttachCgroup(link.CgroupOptions{Path: dir, Attach: at, Program: prog})
		return l, "", err
	}
}

func runProgramProbe(p programProbe) ProbeResult {
	spec := p.spec
	spec.Name = probeProgName
	spec.License = "GPL" // LSM, tracing and bpf_send_signal are GPL-only
	prog, err := ebpf.NewProgram(&spec)
	if err != nil {
		return failed(p.name, StageLoad, err)
	}
	defer prog.Close()
	l, note, err := p.attach(prog)
	if err != nil {
		return failed(p.name, StageAttach, err)
	}
	if l != nil {
		if err := l.Close(); err != nil {
			return failed(p.name, StageAttach, fmt.Errorf("detach: %w", err))
		}
	}
	return ProbeResult{Name: p.name, OK: true, Note: note}
}

// probeRingBuf creates (and closes) the smallest ring buffer map.
func probeRingBuf() ProbeResult {
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       probeProgName,
		Type:       ebpf.RingBuf,
		MaxEntries: uint32(os.Getpagesize()),
	})
	if err != nil {
		return failed(ProbeRingBuf, StageLoad, err)
	}
	if err := m.Close(); err != nil {
		return failed(ProbeRingBuf, StageLoad, fmt.Errorf("close: %w", err))
	}
	return ProbeResult{Name: ProbeRingBuf, OK: true}
}

// probeSendSignal asks whether tracepoint programs may call bpf_send_signal,
// which the enforcement layer uses to kill at syscall entry.
func probeSendSignal() ProbeResult {
	if err := features.HaveProgramHelper(ebpf.TracePoint, asm.FnSendSignal); err != nil {
		return failed(ProbeSendSignal, StageLoad, err)
	}
	return ProbeResult{Name: ProbeSendSignal, OK: true}
}

func failed(name, stage string, err error) ProbeResult {
	return ProbeResult{Name: name, Stage: stage, Error: shortError(err), Detail: err.Error()}
}

// shortError is the errno's text when the chain carries one: the kernel's
// verdict, without cilium/ebpf's wrapping.
func shortError(err error) string {
	var errno unix.Errno
	switch {
	case errors.As(err, &errno):
		return errno.Error()
	case errors.Is(err, ebpf.ErrNotSupported):
		return "not supported by this kernel"
	default:
		return err.Error()
	}
}
