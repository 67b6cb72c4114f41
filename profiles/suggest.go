package profiles

import (
	"fmt"
	"slices"
	"strings"
)

// suggest returns ` (did you mean "x"?)` for the known key closest to got, or
// "" when none is close. Close means an edit distance of at most a third of
// the key's length (at least 1), which catches typos such as "reed" for "read"
// without proposing unrelated words.
func suggest(got string, known []string) string {
	slices.Sort(known) // deterministic choice between equally close keys
	best, bestDist := "", -1
	for _, k := range known {
		d := editDistance(strings.ToLower(got), k)
		if bestDist < 0 || d < bestDist {
			best, bestDist = k, d
		}
	}
	if bestDist < 0 || bestDist > max(1, len(best)/3) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
