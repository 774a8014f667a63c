// Package redact removes credentials and private keys from text that leaves
// the daemon's trust boundary: diagnostics bundles, credential plugin
// output, finding messages. It errs on the side of redacting: a harmless
// value lost costs less than a leaked credential.
//
// Two kinds of redaction exist. Scan (and Bytes, String) is a pattern pass
// for free text: logs, command output, messages. It is best-effort: it
// finds the credential forms it knows (see the Class constants). The
// structural redactors (YAML, JSON, TOML, Env, Args) are for content known
// to hold credentials: they parse it and drop every credential field, and
// fail on content they cannot parse, so that a caller can leave it out
// rather than fall back to patterns.
package redact

import "maps"

// Redacted replaces every secret value.
const Redacted = "[REDACTED]"

// redactedKey replaces a whole PEM private key block.
const redactedKey = "[REDACTED PRIVATE KEY]"

// Classes of what was redacted, as counted in Counts. They are plural
// nouns, so that a manifest listing them is not mistaken for secrets by
// the pattern pass over it.
const (
	// PrivateKey: PEM private key blocks, base64 PEM (kubeconfig
	// client-key-data), base64 DER private keys without a PEM header,
	// OpenSSH keys.
	PrivateKey = "private-keys"
	// AWSKey: AWS access key IDs and the secret that follows one.
	AWSKey = "aws-access-keys"
	// AWSSessionToken: AWS session tokens, recognised by their prefix
	// wherever they appear.
	AWSSessionToken = "aws-session-tokens"
	// Token: tokens with a well-known shape: GitHub (ghp_, gho_, ghu_,
	// ghs_, ghr_, github_pat_), GitLab, Slack, EKS IAM (k8s-aws-v1.),
	// Kubernetes bootstrap tokens.
	Token = "tokens"
	// JWT: JSON web tokens (service account tokens, OIDC ID tokens).
	JWT = "jwts"
	// URLPassword: the password (or a token used as user name) in the
	// user info of a URL, and in a proxy setting without a scheme.
	URLPassword = "url-passwords"
	// Authorization: HTTP authorization header values and bearer tokens.
	Authorization = "authorizations"
	// Assignment: the value of a key, variable, header or flag whose name
	// says it holds a secret (password=, DB_PASS=, "token": ,
	// X-aws-ec2-metadata-token:, --password X).
	Assignment = "assignments"
	// CommandPassword: passwords given to commands in their own syntax:
	// mysql -pPW, sshpass -p PW, curl -u user:PW.
	CommandPassword = "command-passwords"
	// CredentialField: a credential field of a structured file (kubeconfig
	// token, registry auth, exec plugin secrets).
	CredentialField = "credential-fields"
	// Environment: the value of an environment variable in a structured
	// file or process environment whose name is not known to be harmless
	// (structured files) or says it is a secret (environment files).
	Environment = "environment-values"
)

// Counts is how many values of each class were redacted.
type Counts map[string]int

// Total is the number of values redacted.
func (c Counts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// Add adds o to c; c must not be nil unless o is empty.
func (c Counts) Add(o Counts) {
	for k, v := range o {
		c[k] += v
	}
}

// Clone returns a copy of c that is nil when c is empty.
func (c Counts) Clone() Counts {
	if len(c) == 0 {
		return nil
	}
	return maps.Clone(c)
}

func (c *Counts) inc(class string) {
	if *c == nil {
		*c = Counts{}
	}
	(*c)[class]++
}

// Scan removes private keys and credentials from free text: the pattern
// pass. b is not modified. The result is b itself when nothing was found.
// NUL separates words as whitespace does, so that /proc/*/environ and
// /proc/*/cmdline can be scanned as they are.
func Scan(b []byte) ([]byte, Counts) {
	var total Counts
	// A redaction can change the context of what is left (a quote it
	// covered no longer pairs with another), so the passes run again
	// until nothing changes: the result is stable under Scan.
	for range maxRounds {
		var c Counts
		for _, p := range passes {
			b = p(b, &c)
		}
		if len(c) == 0 {
			break
		}
		addCounts(&total, c)
	}
	return b, total
}

// maxRounds bounds Scan's rounds; real text settles after two.
const maxRounds = 4

// Bytes is Scan returning only the number of values redacted.
func Bytes(b []byte) ([]byte, int) {
	out, c := Scan(b)
	return out, c.Total()
}

// String is Scan for a string, e.g. a finding message or a credential
// plugin's error output.
func String(s string) string {
	out, c := Scan([]byte(s))
	if len(c) == 0 {
		return s
	}
	return string(out)
}
