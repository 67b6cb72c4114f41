package bpf

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
)

// The stamp is a one-entry array map pinned next to the objects. It says
// which build pinned the set, so that a daemon never adopts programs and
// maps whose layout it does not know. A map rather than a file: bpffs
// holds no regular files, and a file elsewhere could disagree with the
// pins (a cleanup or a reboot removes them together with the map).

// pinLayout is the version of the pin layout (pin.go) and of what a jail's pins
// mean; it is part of the stamp, so a build that changes them refuses a
// set pinned by one that did not.
const pinLayout = 1

// stampUnixMissing is stamp flag bit 0: the UNIX socket programs did not
// load when the set was pinned (Loader.Missing), so they have no pins.
const stampUnixMissing = 1 << 0

// stampLSMMissing is stamp flag bit 1: the BPF-LSM programs did not load or
// attach (Loader.LSM), so they and their links have no pins.
const stampLSMMissing = 1 << 1

// stampSize is the stamp map's value: the build hash, then pinLayout, the
// flags and the number of global links (little-endian uint32s).
const stampSize = sha256.Size + 3*4

// embeddedObjects are the eBPF objects compiled into this build, in a fixed
// order. TestStampCoversEveryObject checks that none is missing.
func embeddedObjects() [][]byte {
	return [][]byte{_NetBytes, _EgressBytes, _ExecBytes, _FileBytes, _NetwatchBytes, _SockwatchBytes, _TaskBytes, _LsmBytes}
}

// buildHash identifies what a pinned set was made from: the objects' bytes
// and the pin layout. A Go-only change of mcpjail keeps the hash, so an
// upgraded daemon adopts the jails the old one pinned.
func buildHash() [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	for _, o := range embeddedObjects() {
		binary.LittleEndian.PutUint64(n[:], uint64(len(o)))
		h.Write(n[:])
		h.Write(o)
	}
	binary.LittleEndian.PutUint64(n[:], pinLayout)
	h.Write(n[:])
	return [sha256.Size]byte(h.Sum(nil))
}

// stamp is the decoded stamp value.
type stamp struct {
	build       [sha256.Size]byte
	layout      uint32
	flags       uint32
	globalLinks uint32
}

func (s stamp) encode() []byte {
	b := make([]byte, stampSize)
	copy(b, s.build[:])
	binary.LittleEndian.PutUint32(b[sha256.Size:], s.layout)
	binary.LittleEndian.PutUint32(b[sha256.Size+4:], s.flags)
	binary.LittleEndian.PutUint32(b[sha256.Size+8:], s.globalLinks)
	return b
}

func decodeStamp(b []byte) (stamp, error) {
	if len(b) != stampSize {
		return stamp{}, fmt.Errorf("stamp of %d bytes, want %d", len(b), stampSize)
	}
	var s stamp
	copy(s.build[:], b)
	s.layout = binary.LittleEndian.Uint32(b[sha256.Size:])
	s.flags = binary.LittleEndian.Uint32(b[sha256.Size+4:])
	s.globalLinks = binary.LittleEndian.Uint32(b[sha256.Size+8:])
	return s, nil
}

// writeStamp creates the stamp map, freezes it (read-only from user space
// from then on) and pins it.
func writeStamp(path string, s stamp) error {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "mcpjail_stamp", Type: ebpf.Array, KeySize: 4, ValueSize: stampSize, MaxEntries: 1})
	if err != nil {
		return fmt.Errorf("create stamp map: %w", err)
	}
	defer m.Close()
	if err := m.Update(uint32(0), s.encode(), ebpf.UpdateExist); err != nil {
		return fmt.Errorf("write stamp: %w", err)
	}
	if err := m.Freeze(); err != nil {
		return fmt.Errorf("freeze stamp: %w", err)
	}
	if err := m.Pin(path); err != nil {
		return fmt.Errorf("pin stamp: %w", err)
	}
	return nil
}

// readStamp reads a pinned stamp; a missing one is an incomplete set.
func readStamp(path string) (stamp, error) {
	m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if errors.Is(err, os.ErrNotExist) {
		return stamp{}, fmt.Errorf("no stamp: the set is incomplete (a load that did not finish, or a cleanup that did not); %s", cleanupHint)
	}
	if err != nil {
		return stamp{}, fmt.Errorf("open stamp: %w", err)
	}
	defer m.Close()
	b := make([]byte, stampSize)
	if m.ValueSize() != stampSize {
		return stamp{}, fmt.Errorf("stamp value is %d bytes, want %d: pinned by another build; %s", m.ValueSize(), stampSize, cleanupHint)
	}
	if err := m.Lookup(uint32(0), &b); err != nil {
		return stamp{}, fmt.Errorf("read stamp: %w", err)
	}
	return decodeStamp(b)
}
