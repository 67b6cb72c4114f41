package profiles

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestDetectSecretPositives(t *testing.T) {
	tests := []struct{ value, kind string }{
		{"ghp_" + strings.Repeat("aB3", 12), "a GitHub token"},
		{"gho_" + strings.Repeat("Zx9", 12), "a GitHub token"},
		{"ghu_" + strings.Repeat("Q1w", 12), "a GitHub token"},
		{"ghs_" + strings.Repeat("e4R", 12), "a GitHub token"},
		{"ghr_" + strings.Repeat("t5Y", 12), "a GitHub token"},
		{"github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "a GitHub token"},
		{"Bearer ghp_" + strings.Repeat("aB3", 12), "a GitHub token"},
		{"AKIAIOSFODNN7EXAMPLE", "an AWS access key id"},
		{"key=ASIAY34FZKBOKMUTVV7A;", "an AWS access key id"},
		{"xoxb-1234567890-abcdefghij", "a Slack token"},
		{"xoxp-1234567890-1234567890-abcdefabcdef", "a Slack token"},
		{"https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXX", "a Slack webhook URL"},
		{"sk-ant-api03-" + strings.Repeat("abcDEF123_", 5), "an Anthropic API key"},
		{"sk-proj-" + strings.Repeat("Ab1", 10), "an OpenAI-style API key"},
		{"sk-" + strings.Repeat("xY7", 16), "an OpenAI-style API key"},
		{"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----", "a private key"},
		{"-----BEGIN RSA PRIVATE KEY-----", "a private key"},
		{"-----BEGIN PRIVATE KEY-----", "a private key"},
		{"-----BEGIN PGP PRIVATE KEY BLOCK-----", "a private key"},
		{"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "a JSON Web Token"},
		{"postgres://app:hunter2@db.internal:5432/app", "a URL with an embedded password"},
		{"https://api.example.com/v1?api_key=abcdef123456", "a URL with a credential in its query (api_key)"},
		{"https://example.com/hook?token=0123456789", "a URL with a credential in its query (token)"},
		// AWS secret access key: 40 characters of base64.
		{"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "a high-entropy string (an API key or password)"},
		{"--password=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MEFCQ0RFRkdI", "a high-entropy string (an API key or password)"},
		{"user:" + "9fK2mQ7xL4pR8sT1vW3yZ6aB0cD5eF8gH2jK", "a high-entropy string (an API key or password)"},
		// Hex keys (many APIs issue 32-hex-character keys).
		{"3f2a9c8b7e6d5f4a1b0c9d8e7f6a5b4c", "a high-entropy string (an API key or password)"},
	}
	for _, tt := range tests {
		if got := detectSecret(tt.value); got != tt.kind {
			t.Errorf("detectSecret(%q) = %q, want %q", tt.value, got, tt.kind)
		}
	}
}

func TestDetectSecretRandomKeys(t *testing.T) {
	// Random keys in the usual encodings must be caught essentially always.
	misses := 0
	for range 2000 {
		b := make([]byte, 30)
		rand.Read(b)
		for _, key := range []string{base64.RawURLEncoding.EncodeToString(b), base64.StdEncoding.EncodeToString(b), hex.EncodeToString(b[:16])} {
			if detectSecret(key) == "" {
				misses++
			}
		}
	}
	// 6000 keys; the design bound is well under 1% (see looksRandom).
	if misses > 60 {
		t.Errorf("%d of 6000 random keys were not detected", misses)
	}
}

func TestDetectSecretNegatives(t *testing.T) {
	for _, v := range []string{
		"",
		"production",
		"en_US.UTF-8",
		"C.UTF-8",
		"1",
		"true",
		"/usr/local/bin:/usr/bin:/bin",
		"/home/alice/.cache/some-very-long-directory-name/with/Many/Segments0123456789abcdefABCDEF",
		"${WORKDIR}/memory.jsonl",
		"https://api.github.com",
		"https://registry.npmjs.org/@modelcontextprotocol/server-filesystem/-/server-filesystem-2026.8.31.tgz",
		"https://example.com/search?q=averyveryveryverylongqueryvalue1234567890ABCDEF",
		"--max-old-space-size=4096 --enable-source-maps",
		"this_is_a_perfectly_normal_config_value_with_length",
		"ThisIsMyVeryLongCamelCaseIdentifierName",
		"org.example.service.implementation.Factory1234567",
		"kubernetes-production-cluster-eu-west-1-node-pool-2",
		"550e8400-e29b-41d4-a716-446655440000",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
		"00000000000000000000000000000000000000",
		"sk-short",
		"task-1234567890abcdefghij", // "sk-" inside a word is not a key prefix
		"my ghp_ notes",
		"AKIA is a prefix",
	} {
		if got := detectSecret(v); got != "" {
			t.Errorf("detectSecret(%q) = %q, want no secret", v, got)
		}
	}
}

func TestSecretMessageDoesNotEchoValue(t *testing.T) {
	token := "ghp_" + strings.Repeat("aB3", 12)
	_, err := Parse("t.yaml", []byte(header+"env:\n  set: {GH: "+token+"}\n"))
	if err == nil || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "env.secrets") {
		t.Errorf("error = %v: want a pointer to env.secrets without the value", err)
	}
}
