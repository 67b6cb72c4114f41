package profiles

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Parsers for the scalar values of the profile language. Each takes the text
// as written and returns a value or an error message without position; the
// loader adds file:line:col.

const (
	apiVersionV1 = "mcpjail.dev/v1"
	kindProfile  = "Profile"

	// maxPids is the kernel's PID_MAX_LIMIT: no pids limit above it means anything.
	maxPids = 4 << 20
	// maxCPUCores bounds cpu so that millicores never overflow.
	maxCPUCores = 1 << 20
)

var (
	// Profile names become part of cgroup names and audit records, so they are
	// restricted to characters that are safe in a path component.
	profileNameRE = lazyRegexp(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	envNameRE     = lazyRegexp(`^[A-Za-z_][A-Za-z0-9_]*$`)
	sha256RE      = lazyRegexp(`^[0-9a-f]{64}$`)
	// A login name (POSIX portable characters) or a numeric uid.
	userRE = lazyRegexp(`^(?:[A-Za-z_][A-Za-z0-9_.-]{0,31}|[0-9]{1,10})$`)
	cpuRE  = lazyRegexp(`^([0-9]{1,7})(?:\.([0-9]{1,3}))?$`)
	sizeRE = lazyRegexp(`^([0-9]{1,19})([KMGT]i)?$`)
)

// CheckName checks a server name given outside a profile (mcpjail run
// --name): the same rule as a profile's name, which ends up in the same
// places (cgroup names, events, status, metrics) and must not carry control
// characters to an operator's terminal.
func CheckName(s string) error { return checkProfileName(s) }

func checkProfileName(s string) error {
	if !profileNameRE().MatchString(s) {
		return fmt.Errorf("name %q must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", s)
	}
	return nil
}

func checkEnvName(s string) error {
	if !envNameRE().MatchString(s) {
		return fmt.Errorf("invalid environment variable name %q (letters, digits and '_', not starting with a digit)", s)
	}
	return nil
}

func checkSHA256(s string) error {
	if !sha256RE().MatchString(s) {
		return fmt.Errorf("sha256 %q must be 64 lower-case hex digits", s)
	}
	return nil
}

func checkUser(s string) error {
	if strings.Contains(s, "$") {
		return fmt.Errorf("server.user %q: variables are not allowed here", s)
	}
	if !userRE().MatchString(s) {
		return fmt.Errorf("server.user %q is not a valid user name or numeric uid", s)
	}
	return nil
}

// parsePortRange reads "443" or "8000-8100". Port 0 means "any port" to the
// kernel, so it is never a valid entry.
func parsePortRange(s string) (PortRange, error) {
	loText, hiText, isRange := strings.Cut(s, "-")
	lo, err := parsePort(loText, s)
	if err != nil {
		return PortRange{}, err
	}
	if !isRange {
		return PortRange{Lo: lo, Hi: lo}, nil
	}
	hi, err := parsePort(hiText, s)
	if err != nil {
		return PortRange{}, err
	}
	if lo > hi {
		return PortRange{}, fmt.Errorf("port range %q is reversed: write %d-%d", s, hi, lo)
	}
	return PortRange{Lo: lo, Hi: hi}, nil
}

func parsePort(text, whole string) (uint16, error) {
	if text == "" || strings.TrimLeft(text, "0123456789") != "" {
		return 0, fmt.Errorf("malformed port %q: use a number such as 443 or a range such as 8000-8100", whole)
	}
	n, err := strconv.ParseUint(text, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %s is out of range 1-65535", text)
	}
	return uint16(n), nil
}

// parsePrefix reads a CIDR prefix or a bare address (a /32 or /128). A prefix
// with host bits set is refused rather than masked: "10.0.0.1/8" usually means
// the author misunderstood what it covers. IPv4-mapped IPv6 prefixes
// (::ffff:a.b.c.d/n, n >= 96) are normalised to their IPv4 form so that each
// destination has one spelling; the network layer matches v4-mapped traffic
// against IPv4 rules. Shorter mapped prefixes would cover non-mapped space and
// are refused.
func parsePrefix(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("bad cidr %q: %v", s, stripQuoted(err))
		}
		if p.Addr().Is4In6() && p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("cidr %q: an IPv4-mapped prefix must be /96 or longer; write the IPv4 prefix instead", s)
		}
		if m := p.Masked(); m != p {
			return netip.Prefix{}, fmt.Errorf("cidr %q has host bits set; did you mean %s?", s, m)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("bad cidr %q: not an IP address or prefix", s)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("bad cidr %q: zones are not allowed", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p, nil
}

// stripQuoted drops netip's own repetition of the input from its messages.
func stripQuoted(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "): "); i >= 0 {
		return msg[i+3:]
	}
	return msg
}

// parseSize reads a whole number of bytes, optionally with a binary unit.
func parseSize(s string) (int64, error) {
	m := sizeRE().FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("malformed size %q: use a whole number of bytes or Ki, Mi, Gi, Ti (for example 512Mi)", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	shift := unitShift(m[2])
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	if n == 0 {
		return 0, fmt.Errorf("size %q must be greater than 0 (omit the key for no limit)", s)
	}
	return n << shift, nil
}

func unitShift(unit string) uint {
	switch unit {
	case "Ki":
		return 10
	case "Mi":
		return 20
	case "Gi":
		return 30
	case "Ti":
		return 40
	}
	return 0
}

// parseCPU reads a decimal number of cores and returns thousandths of a core.
func parseCPU(s string) (int64, error) {
	m := cpuRE().FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("malformed cpu %q: use a decimal number of cores such as 1 or 1.5 (at most 3 decimals)", s)
	}
	whole, _ := strconv.ParseInt(m[1], 10, 64) // at most 7 digits: cannot fail
	frac := m[2] + strings.Repeat("0", 3-len(m[2]))
	millis, _ := strconv.ParseInt(frac, 10, 64)
	if whole > maxCPUCores {
		return 0, fmt.Errorf("cpu %q exceeds %d cores", s, maxCPUCores)
	}
	total := whole*1000 + millis
	if total == 0 {
		return 0, fmt.Errorf("cpu %q must be greater than 0 (omit the key for no limit)", s)
	}
	return total, nil
}

func parsePids(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("malformed pids %q: use a whole number", s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > maxPids {
		return 0, fmt.Errorf("pids %s exceeds the kernel's maximum %d", s, maxPids)
	}
	if n == 0 {
		return 0, errors.New("pids must be greater than 0 (omit the key for no limit)")
	}
	return n, nil
}

func parsePositiveDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("malformed duration %q: use a Go duration such as 1m or 30s", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("duration %q must be greater than 0", s)
	}
	return d, nil
}

func parseProtocol(s string) (Protocol, error) {
	switch p := Protocol(s); p {
	case ProtoTCP, ProtoUDP, ProtoAny:
		return p, nil
	}
	return "", fmt.Errorf("unknown protocol %q (use tcp, udp or any)", s)
}

func parseAction(s string) (Action, error) {
	switch a := Action(s); a {
	case ActionDeny, ActionKill:
		return a, nil
	}
	return "", fmt.Errorf("unknown action %q (use deny or kill)", s)
}
