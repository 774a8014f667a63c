// Package redact removes credentials and private keys from text that leaves
// the daemon's trust boundary: diagnostics bundles, credential plugin
// output, finding messages. It errs on the side of redacting: a harmless
// value lost costs less than a leaked credential.
package redact

import (
	"bytes"
	"encoding/base64"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Redacted replaces every secret value.
const Redacted = "[REDACTED]"

// pemPrivateKey matches a PEM private key block of any type (RSA, EC,
// PKCS#8, OpenSSH, encrypted, PGP), also when a log prefix precedes each of
// its lines, and to the end of the data when the END line was cut off.
var pemPrivateKey = regexp.MustCompile(`(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)`)

// base64PEM matches base64 text that decodes to "-----BEGIN", the form
// kubeconfigs (client-key-data) and Kubernetes secrets carry keys in.
var base64PEM = regexp.MustCompile(`LS0tLS1CRUdJTi[A-Za-z0-9+/=]*`)

// secretPatterns replace the second capture group (or the whole match when
// there is none) with Redacted. They are deliberately broad: a bundle is
// read by people outside the node's trust boundary, and a redacted
// harmless value costs less than a leaked credential.
var secretPatterns = []*regexp.Regexp{
	// key: value and key=value where the key names a secret, in YAML,
	// JSON, TOML, INI, env files and log lines.
	regexp.MustCompile(`(?i)(["']?[A-Za-z0-9_.-]*(?:token|secret|password|passwd|passphrase|client-key-data|private[_-]?key|access[_-]?key(?:[_-]?id)?|api[_-]?key|credentials?)["']?\s*[:=]\s*)("[^"\n]*"|'[^'\n]*'|[^\s,;}\]]+)`),
	// Environment lists: "name: X_TOKEN" followed by "value: ...".
	regexp.MustCompile(`(?i)(name:\s*["']?[A-Za-z0-9_]*(?:token|secret|key|password)[A-Za-z0-9_]*["']?\s*\n\s*value:\s*)([^\n]+)`),
	regexp.MustCompile(`(?i)("name"\s*:\s*"[^"]*(?:token|secret|key|password)[^"]*"\s*,\s*"value"\s*:\s*)("[^"]*")`),
	// HTTP authorization headers.
	regexp.MustCompile(`(?i)(authorization:\s*(?:bearer|basic)\s+|\bbearer\s+)([A-Za-z0-9._~+/=-]{8,})`),
	// EKS IAM tokens, as the kubelet's exec plugin mints them.
	regexp.MustCompile(`k8s-aws-v1\.[A-Za-z0-9_=-]+`),
	// JWTs: service account tokens, OIDC ID tokens.
	regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*`),
	// AWS access key IDs (long-term and temporary).
	regexp.MustCompile(`\b(?:AKIA|ASIA)[A-Z0-9]{16}\b`),
	// Kubernetes bootstrap tokens.
	regexp.MustCompile(`\b[a-z0-9]{6}\.[a-z0-9]{16}\b`),
}

// Bytes removes private keys and credentials from b. It returns the
// redacted bytes and how many secrets it replaced.
func Bytes(b []byte) ([]byte, int) {
	n := 0
	b = pemPrivateKey.ReplaceAllFunc(b, func([]byte) []byte {
		n++
		return []byte("[REDACTED PRIVATE KEY]")
	})
	b = base64PEM.ReplaceAllFunc(b, func(m []byte) []byte {
		if !isBase64PrivateKey(m) {
			return m
		}
		n++
		return []byte(Redacted)
	})
	for _, re := range secretPatterns {
		if re.NumSubexp() == 0 {
			b = re.ReplaceAllFunc(b, func([]byte) []byte {
				n++
				return []byte(Redacted)
			})
			continue
		}
		b = re.ReplaceAllFunc(b, func(m []byte) []byte {
			sub := re.FindSubmatchIndex(m)
			if bytes.Contains(m[sub[4]:sub[5]], []byte(Redacted)) {
				return m // already redacted by an earlier pattern
			}
			n++
			out := append([]byte{}, m[:sub[4]]...)
			// A quoted value keeps its quotes so that JSON and YAML stay
			// parseable.
			if q := m[sub[4]]; q == '"' || q == '\'' {
				out = append(append(append(out, q), Redacted...), q)
			} else {
				out = append(out, Redacted...)
			}
			return append(out, m[sub[5]:]...)
		})
	}
	return b, n
}

// isBase64PrivateKey decodes the head of a base64 PEM, enough to read its
// BEGIN line, and reports whether it is a private key. Certificates stay:
// they are public and show which identity and expiry a node had.
func isBase64PrivateKey(m []byte) bool {
	head := m[:min(len(m), 80)]
	head = head[:len(head)/4*4]
	dec, err := base64.StdEncoding.DecodeString(string(head))
	if err != nil {
		// Padding in the middle: not one base64 run; be safe.
		return true
	}
	return bytes.Contains(dec, []byte("PRIVATE KEY"))
}

// kubeconfigSecretKey names kubeconfig fields holding credentials: token,
// client-key-data, password, and auth-provider fields (access-token,
// refresh-token, id-token, client-secret).
var kubeconfigSecretKey = regexp.MustCompile(`(?i)(token|secret|password|key-data)`)

var envSecretName = regexp.MustCompile(`(?i)(token|secret|key|password)`)

// Kubeconfig replaces credentials in a kubeconfig (YAML or JSON)
// while keeping its structure, so that server, CA, user names and the exec
// plugin's command remain readable. File references (tokenFile,
// client-key) are paths, not secrets, and are kept. It fails on input that
// is not YAML; the caller then falls back to Bytes alone.
func Kubeconfig(b []byte) ([]byte, int, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, 0, err
	}
	n := 0
	var walk func(*yaml.Node)
	walk = func(node *yaml.Node) {
		switch node.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range node.Content {
				walk(c)
			}
		case yaml.MappingNode:
			isEnvSecret := false
			for i := 0; i+1 < len(node.Content); i += 2 {
				if k, v := node.Content[i], node.Content[i+1]; k.Value == "name" && v.Kind == yaml.ScalarNode && envSecretName.MatchString(v.Value) {
					isEnvSecret = true
				}
			}
			for i := 0; i+1 < len(node.Content); i += 2 {
				k, v := node.Content[i], node.Content[i+1]
				secret := v.Kind == yaml.ScalarNode &&
					((kubeconfigSecretKey.MatchString(k.Value) && !strings.HasSuffix(strings.ToLower(k.Value), "file")) ||
						(isEnvSecret && k.Value == "value"))
				if secret {
					if v.Value != "" {
						v.Value, v.Style, v.Tag = Redacted, 0, "!!str"
						n++
					}
					continue
				}
				walk(v)
			}
		}
	}
	walk(&doc)
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, 0, err
	}
	return out, n, nil
}

// String is Bytes for a string.
func String(s string) string {
	b, _ := Bytes([]byte(s))
	return string(b)
}
