package sandbox

import (
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/mcpjail/mcpjail/profiles"
)

// maxSecretSize bounds a secret file: tokens and keys are small, and a huge
// "secret" is more likely a mistake (a directory of data, a device).
const maxSecretSize = 64 << 10

// buildEnv makes the server's whole environment from the policy alone:
// env.pass from mcpjail's environment (when present), env.set, env.secrets.
// Nothing else passes. Secret values are returned only here, never logged.
func buildEnv(env profiles.Env, lookup func(string) (string, bool), secretOwner int) ([]string, error) {
	out := make([]string, 0, len(env.Pass)+len(env.Set)+len(env.Secrets))
	for _, name := range env.Pass {
		if v, ok := lookup(name); ok {
			out = append(out, name+"="+v)
		}
	}
	for _, kv := range env.Set {
		out = append(out, kv.Name+"="+kv.Value)
	}
	for _, s := range env.Secrets {
		v, err := readSecret(s.Path, secretOwner)
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", s.Name, err)
		}
		out = append(out, s.Name+"="+v)
	}
	return out, nil
}

// readSecret reads a secret file that must be a regular file owned by root or
// the invoking user and unreadable by group and others. It is opened without
// following a final symlink so the checked file is the read file.
func readSecret(path string, owner int) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("stat %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", fmt.Errorf("stat %s: no owner information", path)
	}
	if st.Uid != 0 && int(st.Uid) != owner {
		return "", fmt.Errorf("%s is owned by uid %d; it must be owned by root or uid %d", path, st.Uid, owner)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%s has mode %04o; it must not be accessible by group or others (chmod 600)", path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretSize+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxSecretSize {
		return "", fmt.Errorf("%s is larger than %d bytes", path, maxSecretSize)
	}
	// A trailing newline is an artefact of editors and echo, not part of a token.
	v := strings.TrimRight(string(b), "\r\n")
	if strings.IndexByte(v, 0) >= 0 {
		return "", fmt.Errorf("%s contains a NUL byte", path)
	}
	return v, nil
}

// envValue returns the value of name in an environment list.
func envValue(env []string, name string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}
