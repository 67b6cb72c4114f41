package bpf

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// Constants of lsm.bpf.c and common.h for the BPF-LSM layer.
const (
	eventLSMExec = 13
	eventLSMOpen = 14
	layerBPFLSM  = 3

	reasonFSDeny  = 10
	reasonFSWrite = 11
	reasonFSExec  = 12
	reasonFSDepth = 13

	// MaxFSRules is the capacity of the filesystem rule map (every jail's
	// read, write, exec and deny paths together).
	MaxFSRules = 16384
	// lsmMaxWalk is how many path components a hook walks up before it
	// refuses (fail closed).
	lsmMaxWalk = 256

	// lsmFileEventSize is struct lsm_file_event.
	lsmFileEventSize = headerSize + 16 + PathMax
)

// fs rule bits (FS_* in lsm.bpf.c).
const (
	fsRead  = 1 << 0
	fsWrite = 1 << 1
	fsExec  = 1 << 2
	fsDeny  = 1 << 3
)

// decodeLSMFile decodes an exec or open the BPF-LSM layer refused; b is the
// whole record. Path is the file as the kernel resolved it (bpf_d_path of
// the opened file), absolute, whatever path the caller passed.
func decodeLSMFile(e *Event, kind uint16, reason uint8, b []byte) error {
	if len(b) < lsmFileEventSize {
		return fmt.Errorf("decode event: kind %d record of %d bytes, want %d", kind, len(b), lsmFileEventSize)
	}
	if e.Layer != audit.LayerBPFLSM {
		return fmt.Errorf("decode event: kind %d record from layer %q, not bpf-lsm", kind, e.Layer)
	}
	body := b[headerSize:]
	if ret := int32(native.Uint32(body[0:])); ret < 0 {
		e.Errno = syscall.Errno(-int64(ret))
	}
	fmode := native.Uint32(body[4:])
	e.Flags = uint64(native.Uint32(body[8:]))
	pathLen := min(int(native.Uint16(body[12:])), PathMax-1)
	e.Path = cString(body[16 : 16+pathLen])
	e.Target = targetPath(e.Path)
	e.DirFD = unix.AT_FDCWD // the path is absolute
	why, err := lsmReasonText(reason)
	if err != nil {
		return err
	}
	switch kind {
	case eventLSMExec:
		e.Kind = audit.KindExec
		e.Reason = "exec refused by the BPF LSM with " + errnoText(e.Errno) + ": " + why
		if e.Action == audit.ActionKill {
			e.Reason += "; on_violation.exec is kill: SIGKILL sent"
		}
	case eventLSMOpen:
		e.Kind = audit.KindOpen
		e.Reason = fmt.Sprintf("open (%s, flags %s) refused by the BPF LSM with %s: %s",
			fmodeText(fmode), OpenFlagsText(e.Flags), errnoText(e.Errno), why)
		if e.Action == audit.ActionKill {
			e.Reason += "; on_violation.file is kill: SIGKILL sent"
		}
	}
	return nil
}

func lsmReasonText(r uint8) (string, error) {
	switch r {
	case reasonFSDeny:
		return "under filesystem.deny", nil
	case reasonFSWrite:
		return "not under filesystem.write", nil
	case reasonFSExec:
		return "not under filesystem.exec", nil
	case reasonFSDepth:
		return fmt.Sprintf("more than %d path components (refused, not walked)", lsmMaxWalk), nil
	}
	return "", fmt.Errorf("decode event: unknown BPF-LSM reason %d", r)
}

// fmodeText says how the file was being opened (FMODE_READ 0x1, FMODE_WRITE 0x2).
func fmodeText(m uint32) string {
	switch m & 3 {
	case 1:
		return "read"
	case 2:
		return "write"
	case 3:
		return "read-write"
	}
	return "no read or write"
}
