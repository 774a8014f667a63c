package redact

import (
	"slices"
	"strings"
)

// words splits a key, variable or flag name into lower-case words at
// separators and camelCase boundaries: "X-aws-ec2-metadata-token" → x aws
// ec2 metadata token, "SecretAccessKey" → secret access key.
func words(name string) []string {
	var out []string
	start := -1
	for i := 0; i <= len(name); i++ {
		alnum := i < len(name) && isAlnum(name[i])
		boundary := !alnum ||
			// aB starts a word; so does the B of ABc (AWSRegion → aws region).
			(i > 0 && isUpper(name[i]) && (isLower(name[i-1]) || isDigit(name[i-1]) ||
				(isUpper(name[i-1]) && i+1 < len(name) && isLower(name[i+1]))))
		if boundary && start >= 0 {
			out = append(out, strings.ToLower(name[start:i]))
			start = -1
		}
		if alnum && start < 0 {
			start = i
		}
	}
	return out
}

// secretWords are last words of a name that hold a secret.
var secretWords = []string{
	"password", "passwd", "pass", "pwd", "passphrase", "secret", "token",
	"credential", "credentials", "creds", "auth", "authorization", "apikey",
	"signature", "cookie",
}

// secretSuffixes end a last word run together from several ("dbpassword",
// "identitytoken", "secretaccesskey").
var secretSuffixes = []string{"password", "passwd", "secret", "token", "passphrase", "apikey", "privatekey", "accesskey", "secretkey"}

// secretPairs are two last words that together name a secret
// ("client-key-data", "private_key", "SecretAccessKey").
var secretPairs = []string{"privatekey", "apikey", "accesskey", "secretkey", "keydata", "accountkey", "signingkey", "encryptionkey", "masterkey", "sessionkey"}

// referenceWords end names whose value points at a secret instead of
// holding it (tokenFile, password_path, secretRef).
var referenceWords = []string{"file", "files", "path", "dir", "ref", "name", "names", "id", "ttl", "seconds", "type", "length", "expiry", "expiration", "count"}

// isSecretName reports whether a key, variable, header or flag named name
// holds a secret. It looks at the last words only, so that "tokenFile",
// "tokens", "max_tokens" and "key" are not secrets and "DB_PASS",
// "X-aws-ec2-metadata-token" and "client-key-data" are.
func isSecretName(name string) bool {
	ws := words(name)
	if len(ws) == 0 {
		return false
	}
	last := ws[len(ws)-1]
	if slices.Contains(referenceWords, last) {
		return false
	}
	if slices.Contains(secretWords, last) {
		return true
	}
	for _, s := range secretSuffixes {
		if strings.HasSuffix(last, s) {
			return true
		}
	}
	return len(ws) >= 2 && slices.Contains(secretPairs, ws[len(ws)-2]+last)
}

// isSecretEnvName is isSecretName for environment variables, where a
// name ending in KEY (SSL_KEY, LICENSE_KEY) is a secret too.
func isSecretEnvName(name string) bool {
	if isSecretName(name) {
		return true
	}
	ws := words(name)
	return len(ws) > 0 && ws[len(ws)-1] == "key"
}

// harmlessEnv are variables whose values a structured credential file
// keeps: everything else in its env lists is redacted.
var harmlessEnv = []string{
	"AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_STS_REGIONAL_ENDPOINTS", "AWS_ROLE_ARN",
	"AWS_ROLE_SESSION_NAME", "AWS_SDK_LOAD_CONFIG", "AWS_EC2_METADATA_DISABLED", "AWS_USE_FIPS_ENDPOINT",
	"KUBECONFIG", "KUBERNETES_EXEC_INFO", "HOME", "PATH", "LANG", "LC_ALL", "TZ", "USER",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
}

// isHarmlessEnv reports whether a structured credential file may keep the
// value of variable name. Proxy values keep only host and port (see
// stripUserinfo).
func isHarmlessEnv(name string) bool {
	if slices.Contains(harmlessEnv, name) {
		return true
	}
	ws := words(name)
	if len(ws) == 0 || isSecretEnvName(name) {
		return false
	}
	switch ws[len(ws)-1] {
	case "file", "path", "dir", "region", "endpoint", "endpoints":
		return true
	}
	return false
}

func isProxyName(name string) bool {
	ws := words(name)
	return len(ws) > 0 && ws[len(ws)-1] == "proxy"
}

func isAlnum(c byte) bool      { return isLetter(c) || isDigit(c) }
func isLetter(c byte) bool     { return isLower(c) || isUpper(c) }
func isLowerAlnum(c byte) bool { return isLower(c) || isDigit(c) }
func isLower(c byte) bool      { return c >= 'a' && c <= 'z' }
func isUpper(c byte) bool      { return c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
