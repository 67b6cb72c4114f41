package bpf

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox/audit"
)

func TestCompileBudget(t *testing.T) {
	const now = 5 * time.Second
	tests := []struct {
		name    string
		budget  *profiles.Budget
		action  profiles.Action
		want    *egressBudgetState
		wantErr string
	}{
		{"no budget", nil, profiles.ActionKill, nil, ""},
		{"kill", &profiles.Budget{Bytes: 10 << 20, Per: time.Minute}, profiles.ActionKill,
			&egressBudgetState{Budget: 10 << 20, WindowNs: uint64(time.Minute), Flags: budgetKill, WindowStart: uint64(now)}, ""},
		{"deny", &profiles.Budget{Bytes: 1, Per: MinBudgetWindow}, profiles.ActionDeny,
			&egressBudgetState{Budget: 1, WindowNs: uint64(time.Millisecond), WindowStart: uint64(now)}, ""},
		{"zero bytes", &profiles.Budget{Bytes: 0, Per: time.Minute}, profiles.ActionKill, nil, "bytes must be more than 0"},
		{"window under the minimum", &profiles.Budget{Bytes: 100, Per: MinBudgetWindow - 1}, profiles.ActionKill, nil, "shorter than"},
		{"zero window", &profiles.Budget{Bytes: 100}, profiles.ActionDeny, nil, "shorter than"},
		{"negative window", &profiles.Budget{Bytes: 100, Per: -time.Second}, profiles.ActionDeny, nil, "shorter than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := compileBudget(tc.budget, tc.action, now)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("compileBudget: %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("compileBudget: %v", err)
			}
			if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
				t.Fatalf("compileBudget = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// encodeBudget lays a budget record out through the bpf2go-generated struct,
// so that the decoder's offsets are checked against the C layout.
func encodeBudget(t testing.TB, e egressBudgetEvent) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, &e); err != nil {
		t.Fatal(err)
	}
	if b.Len() != budgetEventSize {
		t.Fatalf("generated budget_event is %d bytes, decoder expects %d", b.Len(), budgetEventSize)
	}
	return b.Bytes()
}

func budgetRecord(reason uint8, flags uint32, family, port, protocol uint16, addr []byte) egressBudgetEvent {
	e := egressBudgetEvent{Budget: 65536, WindowNs: uint64(10 * time.Second), Bytes: 66000, PacketLen: 1500,
		Flags: flags, Family: family, Port: port, Protocol: protocol}
	e.Hdr.CgroupId, e.Hdr.Tgid, e.Hdr.Tid = 4242, 100, 101
	e.Hdr.Kind, e.Hdr.Verdict, e.Hdr.Reason = eventEgressBudget, verdictDeny, reason
	copy(e.Addr[:], addr)
	return e
}

func TestDecodeBudgetRecord(t *testing.T) {
	v6loop := make([]byte, 16)
	v6loop[15] = 1
	tests := []struct {
		name   string
		rec    egressBudgetEvent
		target string
		action audit.Action
		reason string // a substring
	}{
		{"kill, IPv4 TCP", budgetRecord(reasonEgressBudget, budgetKill, afInet, 8080, 6, []byte{127, 0, 0, 1}),
			"65536 bytes in 10s", audit.ActionKill,
			"66000 bytes counted in the window with a 1500-byte packet to 127.0.0.1:8080/tcp"},
		{"deny, IPv6 UDP", budgetRecord(reasonEgressBudget, 0, afInet6, 53, 17, v6loop),
			"65536 bytes in 10s", audit.ActionNone, "to [::1]:53/udp"},
		{"no socket", budgetRecord(reasonEgressBudget, budgetKill, 0, 0, 0, nil),
			"65536 bytes in 10s", audit.ActionKill, "1500-byte packet; every later packet is dropped"},
		{"no budget entry", budgetRecord(reasonNoJail, 0, afInet, 443, 6, []byte{10, 0, 0, 1}),
			"10.0.0.1:443/tcp", audit.ActionNone, reasonText(reasonNoJail)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := decodeRecord(encodeBudget(t, tc.rec))
			if err != nil {
				t.Fatalf("decodeRecord: %v", err)
			}
			if ev.Kind != audit.KindEgressBudget || ev.Target != tc.target || ev.Action != tc.action ||
				ev.Verdict != audit.VerdictDeny || ev.CgroupID != 4242 || ev.PID != 100 {
				t.Errorf("decoded %+v; want kind egress_budget, target %q, action %s, deny, cgroup 4242, pid 100",
					ev, tc.target, tc.action)
			}
			if !strings.Contains(ev.Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", ev.Reason, tc.reason)
			}
			if a := ev.Audit(time.Unix(0, 0)); a.Action != tc.action || a.Layer != audit.LayerBPF {
				t.Errorf("audit record %+v: want action %s by bpf", a, tc.action)
			}
		})
	}
	short := encodeBudget(t, budgetRecord(reasonEgressBudget, budgetKill, afInet, 1, 6, nil))
	if _, err := decodeRecord(short[:len(short)-1]); err == nil {
		t.Error("a truncated budget record decoded without error")
	}
}

// TestAuditActionDefault checks that events which say nothing of an action
// (the network records) still become audit records with action none.
func TestAuditActionDefault(t *testing.T) {
	if a := (Event{Kind: audit.KindConnect}).Audit(time.Unix(0, 0)); a.Action != audit.ActionNone {
		t.Errorf("audit action %q, want %q", a.Action, audit.ActionNone)
	}
}

func FuzzDecodeBudgetRecord(f *testing.F) {
	f.Add(encodeBudget(f, budgetRecord(reasonEgressBudget, budgetKill, afInet, 80, 6, []byte{127, 0, 0, 1})))
	f.Add(encodeBudget(f, budgetRecord(reasonNoJail, 0, afInet6, 80, 17, nil)))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decodeRecord(b)
		if err != nil {
			return
		}
		if ev.Kind == audit.KindEgressBudget && len(b) < budgetEventSize {
			t.Fatalf("decoded a %d-byte budget record, shorter than %d", len(b), budgetEventSize)
		}
	})
}
