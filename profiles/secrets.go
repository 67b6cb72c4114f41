package profiles

import (
	"math"
	"net/url"
	"regexp"
	"strings"
)

// Profiles are reviewed in git and printed by `profile show`, so a credential
// written into env.set would leak. detectSecret looks for the well-known token
// formats first and then for long random-looking strings.

// tokenPattern is one well-known credential format.
type tokenPattern struct {
	kind string
	re   func() *regexp.Regexp
}

// Each format is anchored at a boundary so that it is not found inside a
// longer word. The order matters only for the name reported.
var tokenPatterns = []tokenPattern{
	{"a GitHub token", lazyRegexp(`(?:^|[^A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})`)},
	{"an AWS access key id", lazyRegexp(`(?:^|[^A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?:[^A-Z0-9]|$)`)},
	{"a Slack token", lazyRegexp(`(?:^|[^A-Za-z0-9])xox[abprs]-[A-Za-z0-9-]{10,}`)},
	{"a Slack webhook URL", lazyRegexp(`hooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+`)},
	{"an Anthropic API key", lazyRegexp(`(?:^|[^A-Za-z0-9])sk-ant-[A-Za-z0-9_-]{20,}`)},
	{"an OpenAI-style API key", lazyRegexp(`(?:^|[^A-Za-z0-9])sk-[A-Za-z0-9_-]{20,}`)},
	{"a private key", lazyRegexp(`-----BEGIN[A-Z0-9 ]* PRIVATE KEY(?: BLOCK)?-----`)},
	{"a JSON Web Token", lazyRegexp(`(?:^|[^A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.`)},
}

// URL query parameters whose value is a credential by name.
var credentialParams = []string{"token", "access_token", "api_key", "apikey", "key", "secret", "password", "passwd", "sig", "signature", "auth"}

const (
	// minRandomLen: shorter strings carry too little evidence either way, and
	// real keys (AWS secret keys: 40, most API keys: 32+) are at least this long.
	minRandomLen = 32
	// Thresholds in bits per character, measured over 100,000 random strings
	// of 32 characters: base62/base64 have a median of 4.55 and fall below
	// 4.0 in fewer than 0.05% of cases, while identifiers, dotted names and
	// kebab-case values of that length measure 3.4-4.2 and are excluded by
	// the character-class rule below. Hex keys (16 symbols) have a median of
	// 3.63 and fall below 3.0 in fewer than 0.01% of cases; a 32+ character
	// hex run is not a word, so its threshold only filters out repetitions
	// such as "0000...".
	mixedEntropyThreshold = 4.0
	hexEntropyThreshold   = 3.0
)

// detectSecret returns what s looks like ("a GitHub token", ...) or "".
func detectSecret(s string) string {
	for _, p := range tokenPatterns {
		if p.re().MatchString(s) {
			return p.kind
		}
	}
	for _, field := range strings.Fields(s) {
		if kind := fieldSecret(field); kind != "" {
			return kind
		}
	}
	return ""
}

// fieldSecret inspects one whitespace-separated field. Paths and URLs without
// credentials are never flagged: long path components are normal.
func fieldSecret(field string) string {
	if strings.Contains(field, "://") {
		return urlSecret(field)
	}
	if strings.HasPrefix(field, "/") || strings.HasPrefix(field, "./") || strings.HasPrefix(field, "~/") || strings.HasPrefix(field, "${") {
		return ""
	}
	// "--key=VALUE", "user:TOKEN", "a,b": judge each piece on its own.
	for _, piece := range strings.FieldsFunc(field, func(r rune) bool { return strings.ContainsRune(`=:,;@&?"'`, r) }) {
		if looksRandom(piece) {
			return "a high-entropy string (an API key or password)"
		}
	}
	return ""
}

func urlSecret(field string) string {
	u, err := url.Parse(field)
	if err != nil {
		return ""
	}
	if _, hasPassword := u.User.Password(); hasPassword {
		return "a URL with an embedded password"
	}
	for name, values := range u.Query() {
		for _, v := range values {
			if len(v) >= 8 && isCredentialParam(name) {
				return "a URL with a credential in its query (" + name + ")"
			}
		}
	}
	return ""
}

func isCredentialParam(name string) bool {
	name = strings.ToLower(name)
	for _, p := range credentialParams {
		if name == p || strings.HasSuffix(name, "_"+p) {
			return true
		}
	}
	return false
}

// looksRandom reports whether piece is a long run of base64/hex characters
// with the entropy of random data. Mixed-alphabet pieces must contain upper
// case, lower case and digits: random keys almost always do (a random
// 32-character base62 string lacks one of them with probability below 0.4%),
// while identifiers such as "this_is_a_perfectly_normal_config_value" do not.
func looksRandom(piece string) bool {
	if len(piece) < minRandomLen {
		return false
	}
	var upper, lower, digit, hexOnly = false, false, false, true
	for i := 0; i < len(piece); i++ {
		c := piece[i]
		switch {
		case 'A' <= c && c <= 'Z':
			upper = true
			hexOnly = hexOnly && c <= 'F'
		case 'a' <= c && c <= 'z':
			lower = true
			hexOnly = hexOnly && c <= 'f'
		case '0' <= c && c <= '9':
			digit = true
		case c == '+' || c == '/' || c == '_' || c == '-':
			hexOnly = false
		default:
			return false // dots, spaces, non-ASCII: prose or names, not keys
		}
	}
	if hexOnly {
		return shannonEntropy(piece) >= hexEntropyThreshold
	}
	return upper && lower && digit && shannonEntropy(piece) >= mixedEntropyThreshold
}

// shannonEntropy is the entropy of s's byte distribution in bits per byte.
func shannonEntropy(s string) float64 {
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	h := 0.0
	n := float64(len(s))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}
