package bpf

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

func lsmFileRecord(t testing.TB, kind uint16, reason, action, layer uint8, fmode uint32, flags uint32, path string) []byte {
	e := &lsmLsmFileEvent{Ret: -int32(unix.EPERM), F_mode: fmode, F_flags: flags, PathLen: uint16(len(path))}
	putString(e.Path[:], path)
	b := withHeader(encodeAny(t, e, lsmFileEventSize), kind, verdictDeny, action, layer)
	b[43] = reason
	return b
}

func TestDecodeLSMRecords(t *testing.T) {
	tests := []struct {
		name   string
		rec    []byte
		kind   audit.Kind
		action audit.Action
		reason string
	}{
		{"exec outside filesystem.exec",
			lsmFileRecord(t, eventLSMExec, reasonFSExec, actionNone, layerBPFLSM, 0x21, 0, "/memfd:payload (deleted)"),
			audit.KindExec, "", "exec refused by the BPF LSM with EPERM: not under filesystem.exec"},
		{"exec under deny, killed",
			lsmFileRecord(t, eventLSMExec, reasonFSDeny, actionKill, layerBPFLSM, 0x21, 0, "/work/secret/tool"),
			audit.KindExec, audit.ActionKill, "exec refused by the BPF LSM with EPERM: under filesystem.deny; on_violation.exec is kill: SIGKILL sent"},
		{"open under deny",
			lsmFileRecord(t, eventLSMOpen, reasonFSDeny, actionNone, layerBPFLSM, 0x1, unix.O_RDONLY, "/work/secret/key"),
			audit.KindOpen, "", "open (read, flags O_RDONLY) refused by the BPF LSM with EPERM: under filesystem.deny"},
		{"write outside filesystem.write",
			lsmFileRecord(t, eventLSMOpen, reasonFSWrite, actionNone, layerBPFLSM, 0x3, unix.O_RDWR|unix.O_CREAT, "/etc/passwd"),
			audit.KindOpen, "", "open (read-write, flags O_RDWR|O_CREAT) refused by the BPF LSM with EPERM: not under filesystem.write"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := decodeRecord(tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			path := strings.TrimRight(string(tt.rec[headerSize+16:headerSize+16+200]), "\x00")
			if ev.Kind != tt.kind || ev.Layer != audit.LayerBPFLSM || ev.Verdict != audit.VerdictDeny ||
				ev.Path != path || ev.Target != path || ev.Errno != syscall.EPERM || ev.Action != tt.action ||
				ev.Reason != tt.reason || ev.DirFD != unix.AT_FDCWD || ev.PID != 300 || ev.Comm != "node" {
				t.Errorf("decoded %+v", ev)
			}
			if a := ev.Audit(time.Now()); a.Layer != audit.LayerBPFLSM {
				t.Errorf("audit layer %q", a.Layer)
			}
		})
	}

	bad := map[string][]byte{
		"unknown reason":    lsmFileRecord(t, eventLSMOpen, 99, actionNone, layerBPFLSM, 1, 0, "/x"),
		"not the LSM layer": lsmFileRecord(t, eventLSMOpen, reasonFSDeny, actionNone, layerLandlock, 1, 0, "/x"),
		"short":             lsmFileRecord(t, eventLSMExec, reasonFSExec, actionNone, layerBPFLSM, 1, 0, "/x")[:lsmFileEventSize-1],
	}
	for name, rec := range bad {
		if ev, err := decodeRecord(rec); err == nil {
			t.Errorf("%s: decoded %+v", name, ev)
		}
	}
}

// TestDecodeLSMConnect: the LSM's connect records are net_events with the
// bpf-lsm layer.
func TestDecodeLSMConnect(t *testing.T) {
	rec := netRecord(eventConnect, reasonNoPrefix, afInet, 9, 1, 6, []byte{127, 0, 0, 9}, "")
	rec.Hdr.Layer = layerBPFLSM
	rec.Hdr.Action = actionKill
	ev, err := decodeRecord(encode(t, rec))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind != audit.KindConnect || ev.Target != "127.0.0.9:9/tcp" || ev.Layer != audit.LayerBPFLSM || ev.Action != audit.ActionKill {
		t.Errorf("decoded %+v", ev)
	}
}

func FuzzDecodeLSMRecord(f *testing.F) {
	f.Add(lsmFileRecord(f, eventLSMOpen, reasonFSDeny, actionKill, layerBPFLSM, 1, 0, "/work/secret"))
	f.Add(lsmFileRecord(f, eventLSMExec, reasonFSDepth, actionNone, layerBPFLSM, 0x20, 0, ""))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decodeRecord(b)
		if err != nil || (ev.Layer != audit.LayerBPFLSM || (ev.Kind != audit.KindOpen && ev.Kind != audit.KindExec)) {
			return
		}
		if len(b) < lsmFileEventSize || ev.Target == "" || ev.Reason == "" || len(ev.Path) >= PathMax {
			t.Fatalf("accepted %d bytes as %+v", len(b), ev)
		}
	})
}
