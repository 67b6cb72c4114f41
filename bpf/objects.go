package bpf

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// kernelObjects is what Load asks bpf2go's spec for: programs and maps,
// not the record-type anchor variable, whose .bss map would otherwise be
// created and then outlive Close until a garbage collection unmaps it.
//
// The programs are split by what loading them needs, so that the two halves
// load in parallel (see loadKernelObjects); together they are exactly the
// generated netPrograms, which TestKernelObjectsCoverSpec checks.
type kernelObjects struct {
	netMaps
	inetPrograms
	unixPrograms
}

// inetPrograms carry no kfunc and no CO-RE relocation (net.bpf.c includes
// only UAPI headers), so loading them never reads the kernel's BTF.
type inetPrograms struct {
	McpjailConn4 *ebpf.Program `ebpf:"mcpjail_conn4"`
	McpjailConn6 *ebpf.Program `ebpf:"mcpjail_conn6"`
	McpjailSend4 *ebpf.Program `ebpf:"mcpjail_send4"`
	McpjailSend6 *ebpf.Program `ebpf:"mcpjail_send6"`
	McpjailSock  *ebpf.Program `ebpf:"mcpjail_sock"`
}

// unixPrograms call the bpf_cast_to_kern_ctx kfunc and read two fields of a
// kernel-internal struct, so loading them needs the kernel's BTF.
type unixPrograms struct {
	McpjailConnun *ebpf.Program `ebpf:"mcpjail_connun"`
	McpjailSendun *ebpf.Program `ebpf:"mcpjail_sendun"`
}

// Close closes what was loaded (Close of a nil program or map is a no-op).
func (o *kernelObjects) Close() error {
	return errors.Join(o.McpjailConn4.Close(), o.McpjailConn6.Close(), o.McpjailSend4.Close(),
		o.McpjailSend6.Close(), o.McpjailSock.Close(), o.McpjailConnun.Close(), o.McpjailSendun.Close(),
		o.netMaps.Close())
}

// loadKernelObjects creates the maps, then loads the two program halves in
// parallel. Parsing the kernel's BTF into kernelBTF (about 11 ms of CPU for
// the 6 MB vmlinux blob, plus about 5 ms to decode the struct the UNIX
// programs read, redone by every mcpjail process) is the longest step, and
// of this object only the UNIX programs wait for it, so it starts first, on
// its own goroutine, while the object is parsed, the maps are created and
// the inet programs are verified. The objects Load loads next reuse
// kernelBTF. Both halves use the maps created first, so there is one set of
// maps, as with a single load. On error nothing stays loaded.
//
// The UNIX programs need the bpf_cast_to_kern_ctx kfunc (Linux 6.2) and the
// cgroup UNIX attach types (6.7). Where they do not load, the inet programs
// still do: unixErr says why, objs has no UNIX programs, and the caller must
// report UNIX socket filtering as a missing layer.
func loadKernelObjects(objs *kernelObjects, kernelBTF *btf.Cache) (unixErr, err error) {
	var wg sync.WaitGroup
	defer wg.Wait() // no goroutine outlives the load
	// An error here recurs, and is reported, in the load that needs the BTF.
	wg.Go(func() { _, _ = kernelBTF.Kernel() })

	spec, err := loadNet()
	if err != nil {
		return nil, err
	}
	if err := spec.LoadAndAssign(&objs.netMaps, nil); err != nil {
		return nil, fmt.Errorf("create maps: %w", err)
	}
	defer func() {
		if err != nil {
			_ = objs.Close()
			*objs = kernelObjects{}
		}
	}()
	opts := &ebpf.CollectionOptions{
		// LoadAndAssign clones these: the programs reference the maps above.
		MapReplacements: map[string]*ebpf.Map{
			"mcpjail_egress4": objs.McpjailEgress4,
			"mcpjail_egress6": objs.McpjailEgress6,
			"mcpjail_events":  objs.McpjailEvents,
			"mcpjail_jails":   objs.McpjailJails,
			"mcpjail_lost":    objs.McpjailLost,
			"mcpjail_unix":    objs.McpjailUnix,
		},
		Cache: kernelBTF, // safe for concurrent use
	}
	unixSpec := spec.Copy()
	wg.Go(func() { unixErr = unixSpec.LoadAndAssign(&objs.unixPrograms, opts) })
	inetErr := spec.LoadAndAssign(&objs.inetPrograms, opts)
	wg.Wait()
	if inetErr != nil {
		return nil, fmt.Errorf("load inet programs: %w", inetErr)
	}
	if unixErr != nil {
		// LoadAndAssign assigns nothing when it fails.
		objs.unixPrograms = unixPrograms{}
		return fmt.Errorf("load UNIX programs: %w", unixErr), nil
	}
	return nil, nil
}
