package confine

import (
	"encoding/binary"
	"testing"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// socketRefusal is the socket policy written out plainly, the oracle the
// compiled filter is checked against. It looks at the low 32 bits of each
// argument only, as the kernel (which takes ints) does.
func socketRefusal(syscallName string, family, typ, protocol uint64) bool {
	f, ty, proto := uint32(family), uint32(typ), uint32(protocol)
	switch f {
	case unix.AF_UNIX:
	case unix.AF_INET, unix.AF_INET6:
		if syscallName == "socket" && ty&0xf == unix.SOCK_RAW {
			return true
		}
	case unix.AF_NETLINK:
		if syscallName == "socket" && proto != unix.NETLINK_ROUTE {
			return true
		}
	default:
		return true
	}
	return syscallName == "socket" && proto == ipprotoMPTCP
}

// socketFilter returns a function running the deny-list's filter on one
// socket or socketpair call.
func socketFilter(t testing.TB) func(name string, family, typ, protocol uint64) uint32 {
	prog, err := seccompProgram(false, false)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("filter does not load in the BPF VM: %v", err)
	}
	native, _ := nativeArch()
	return func(name string, family, typ, protocol uint64) uint32 {
		ret, err := vm.Run(seccompData(native.SyscallNames[name], uint32(native.ID), family, typ, protocol))
		if err != nil {
			t.Fatalf("run filter: %v", err)
		}
		return uint32(ret)
	}
}

func checkSocketCall(t *testing.T, run func(string, uint64, uint64, uint64) uint32, name string, family, typ, protocol uint64) {
	t.Helper()
	want := uint32(retAllow)
	if socketRefusal(name, family, typ, protocol) {
		want = retEPERM
	}
	if got := run(name, family, typ, protocol); got != want {
		t.Errorf("%s(%#x, %#x, %#x): filter returns %#x, want %#x", name, family, typ, protocol, got, want)
	}
}

// TestSeccompSocketPolicy sweeps every family below 64 (the kernel's
// AF_MAX is 46), every type with and without flags, and the protocols that
// matter, with and without junk in the high 32 bits.
func TestSeccompSocketPolicy(t *testing.T) {
	run := socketFilter(t)
	highs := []uint64{0, 1 << 32, 0xffff_ffff_0000_0000}
	protocols := []uint64{0, 1, 4, 9, 15, 16, unix.IPPROTO_TCP, unix.IPPROTO_UDP, ipprotoMPTCP, ipprotoMPTCP | 1, 0xffff_ffff}
	for _, name := range []string{"socket", "socketpair"} {
		for family := uint64(0); family < 64; family++ {
			for typ := uint64(0); typ < 16; typ++ {
				for _, flags := range []uint64{0, unix.SOCK_CLOEXEC, unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC} {
					for _, protocol := range protocols {
						for i, high := range highs {
							checkSocketCall(t, run, name, high|family, highs[(i+1)%len(highs)]|typ|flags, highs[(i+2)%len(highs)]|protocol)
						}
					}
				}
			}
		}
		for _, family := range []uint64{0xffff_ffff, 1 << 31, 1<<31 | unix.AF_INET, 1<<16 | unix.AF_UNIX, 0x100 | unix.AF_NETLINK} {
			checkSocketCall(t, run, name, family, unix.SOCK_STREAM, 0)
		}
	}
}

func FuzzSeccompSocket(f *testing.F) {
	f.Add(false, uint64(unix.AF_NETLINK), uint64(unix.SOCK_RAW), uint64(unix.NETLINK_AUDIT))
	f.Add(true, uint64(1<<32|unix.AF_PACKET), uint64(unix.SOCK_STREAM), uint64(0))
	f.Add(false, uint64(unix.AF_INET6), uint64(1<<40|unix.SOCK_RAW|unix.SOCK_CLOEXEC), uint64(0))
	run := socketFilter(f)
	f.Fuzz(func(t *testing.T, pair bool, family, typ, protocol uint64) {
		name := "socket"
		if pair {
			name = "socketpair"
		}
		checkSocketCall(t, run, name, family, typ, protocol)
	})
}

// FuzzLowWordNotIn checks the compiled alternatives against their meaning:
// they match exactly when the low 32 bits of the argument are none of the
// allowed values (up to 8, read from raw as little-endian words).
func FuzzLowWordNotIn(f *testing.F) {
	le := func(vs ...uint32) []byte {
		b := make([]byte, 0, 4*len(vs))
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint32(b, v)
		}
		return b
	}
	f.Add(le(unix.AF_UNIX, unix.AF_INET, unix.AF_INET6, unix.AF_NETLINK), uint64(unix.AF_PACKET))
	f.Add(le(unix.AF_UNIX, unix.AF_INET, unix.AF_INET6, unix.AF_NETLINK), uint64(1<<32|unix.AF_INET))
	f.Add(le(0), uint64(1<<40))
	f.Add(le(0xffff_ffff, 0, 1<<31), uint64(0x7fff_ffff))
	f.Add(le(2, 8), uint64(8))
	f.Add([]byte{}, uint64(0))
	native, err := nativeArch()
	if err != nil {
		f.Skip(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte, arg uint64) {
		var allowed []uint32
		for len(raw) >= 4 && len(allowed) < 8 {
			allowed = append(allowed, binary.LittleEndian.Uint32(raw))
			raw = raw[4:]
		}
		var named []seccomp.NameWithConditions
		for _, c := range lowWordNotIn(2, allowed...) {
			named = append(named, seccomp.NameWithConditions{Name: "socket", Conditions: c})
		}
		policy := seccomp.Policy{DefaultAction: seccomp.ActionAllow, Syscalls: []seccomp.SyscallGroup{{
			Action: seccomp.ActionErrno | seccomp.Action(unix.EPERM), NamesWithCondtions: named,
		}}}
		prog, err := policy.Assemble()
		if err != nil {
			t.Fatal(err)
		}
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatal(err)
		}
		got := runFilter(t, vm, seccompData(native.SyscallNames["socket"], uint32(native.ID), 0, 0, arg)) == retEPERM
		want := true
		for _, v := range allowed {
			if uint32(arg) == v {
				want = false
			}
		}
		if got != want {
			t.Errorf("lowWordNotIn(2, %#x) on argument %#x: matched %v, want %v", allowed, arg, got, want)
		}
	})
}
