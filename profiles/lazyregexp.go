package profiles

import (
	"regexp"
	"sync"
)

// lazyRegexp compiles expr on first use. Compiling at package init would
// cost every process started from the binary, and the init step and the
// cleanup guard start from it on every run without matching any pattern.
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
