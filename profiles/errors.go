package profiles

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a profile, located at file:line:col (both 1-based).
// YAML syntax errors come from the parser with a line only; they carry Col 1.
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// ErrorList is every problem found in one profile, sorted by position. Loading
// and compiling report all problems at once so a profile can be fixed in one
// pass.
type ErrorList []*Error

func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// err returns the list sorted by position as an error, or nil when it is empty
// (a nil ErrorList inside a non-nil error interface would read as failure).
func (l ErrorList) err() error {
	if len(l) == 0 {
		return nil
	}
	sorted := slices.Clone(l)
	slices.SortStableFunc(sorted, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	return sorted
}

// pos is where a value was written in its file.
type pos struct{ Line, Col int }

// errs collects errors for one file.
type errs struct {
	file string
	list ErrorList
}

func (e *errs) at(p pos, format string, args ...any) {
	line, col := max(p.Line, 1), max(p.Col, 1)
	e.list = append(e.list, &Error{File: e.file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}
