package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mcpjail/mcpjail/profiles"
)

// defaultPath is the search path when the server's environment has no PATH.
const defaultPath = "/usr/local/bin:/usr/bin:/bin"

// resolveExecutable finds argv0 the way execvp would for the server: a name
// with a slash is taken relative to dir, anything else is looked up in the
// server's PATH. It returns an absolute path.
func resolveExecutable(argv0, pathEnv, dir string) (string, error) {
	if argv0 == "" {
		return "", errorf(ExitUsage, "no command given")
	}
	if strings.Contains(argv0, "/") {
		p := argv0
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		return p, checkExecutable(p)
	}
	if pathEnv == "" {
		pathEnv = defaultPath
	}
	var firstErr error
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" || !filepath.IsAbs(d) {
			continue // relative PATH entries would depend on the server's cwd
		}
		p := filepath.Join(d, argv0)
		err := checkExecutable(p)
		if err == nil {
			return p, nil
		}
		var e *Error
		if errors.As(err, &e) && e.Code == ExitCannotExec && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return "", firstErr
	}
	return "", errorf(ExitNotFound, "%s: command not found in PATH %s", argv0, pathEnv)
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return errorf(ExitNotFound, "%s: no such file", p)
	}
	if err != nil {
		return errorf(ExitCannotExec, "%s: %v", p, err)
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return errorf(ExitCannotExec, "%s: not an executable file", p)
	}
	return nil
}

// ResolvePin returns what `mcpjail profile pin` writes into a profile: the
// file argv0 really runs (found as run finds it, symlinks followed) and its
// SHA-256, so that checkIntegrity later compares like with like.
func ResolvePin(argv0, pathEnv, dir string) (exe, sum string, err error) {
	found, err := resolveExecutable(argv0, pathEnv, dir)
	if err != nil {
		return "", "", err
	}
	if exe, err = filepath.EvalSymlinks(found); err != nil {
		return "", "", fmt.Errorf("resolve %s: %w", found, err)
	}
	if sum, err = fileSHA256(exe); err != nil {
		return "", "", err
	}
	return exe, sum, nil
}

// checkIntegrity enforces server.executable and server.sha256 on the file
// that will really run (symlinks resolved). It returns the resolved path.
// The digest is computed from an open descriptor whose identity is compared
// with the path afterwards, so a swap during hashing is noticed; a swap
// between this check and execve remains possible for whoever can write the
// binary's directory, and is documented.
func checkIntegrity(exe string, pin profiles.Server) (string, error) {
	real, err := filepath.EvalSymlinks(exe)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", exe, err)
	}
	if pin.Executable != "" {
		want, err := filepath.EvalSymlinks(pin.Executable)
		if err != nil {
			want = pin.Executable
		}
		if real != want {
			return real, fmt.Errorf("integrity: %s resolves to %s, but the profile pins server.executable %s", exe, real, pin.Executable)
		}
	}
	if pin.SHA256 == "" {
		return real, nil
	}
	sum, err := fileSHA256(real)
	if err != nil {
		return real, fmt.Errorf("integrity: %w", err)
	}
	if sum != strings.ToLower(pin.SHA256) {
		return real, fmt.Errorf("integrity: sha256 of %s is %s, but the profile pins %s", real, sum, pin.SHA256)
	}
	return real, nil
}

// fileSHA256 hashes a regular file and checks it was not replaced while
// being read. Anything else (a FIFO would block, a device never ends) is
// refused; O_NONBLOCK keeps opening a FIFO from waiting for a writer.
func fileSHA256(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	var byFD, byPath syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &byFD); err != nil {
		return "", fmt.Errorf("stat %s: %w", path, err)
	}
	if byFD.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	before := byFD
	if err := syscall.Fstat(int(f.Fd()), &byFD); err != nil {
		return "", fmt.Errorf("stat %s: %w", path, err)
	}
	if err := syscall.Stat(path, &byPath); err != nil {
		return "", fmt.Errorf("stat %s: %w", path, err)
	}
	if byFD.Dev != byPath.Dev || byFD.Ino != byPath.Ino || byFD.Mtim != byPath.Mtim || byFD.Size != byPath.Size ||
		before.Mtim != byFD.Mtim || before.Size != byFD.Size {
		return "", fmt.Errorf("%s changed while it was being hashed", path)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
