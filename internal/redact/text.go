package redact

import (
	"bytes"
	"regexp"
)

// passes make up Scan, most specific first: a later pass leaves alone what
// an earlier one redacted.
var passes = []func([]byte, *Counts) []byte{
	pemKeys, base64Keys, shapedTokens, bootstrapTokens, urlPasswords, commandPasswords, assignments, bearerTokens,
}

// shaped is a credential recognised by its own shape wherever it appears.
// Each pattern starts with a literal, which regexp uses to skip ahead, so
// that clean text costs a substring search.
type shaped struct {
	re    *regexp.Regexp
	class string
}

// awsKeyFollow redacts, after an access key ID, the long base64 words that
// follow it on the line: the secret key and session token of a
// credentials CSV, a log line or an `aws configure` echo.
const awsKeyFollow = `(?:[ \t\x00,;:|"'=]+[A-Za-z0-9+/]{30,}={0,2})*`

var shapedPatterns = []shaped{
	{regexp.MustCompile(`AKIA[A-Z0-9]{16}` + awsKeyFollow), AWSKey},
	{regexp.MustCompile(`ASIA[A-Z0-9]{16}` + awsKeyFollow), AWSKey},
	// Session tokens are base64 of a serialized structure that starts the
	// same way; in URLs they are percent-encoded.
	{regexp.MustCompile(`IQoJb3JpZ2lu[A-Za-z0-9+/=%]+`), AWSSessionToken},
	{regexp.MustCompile(`FwoGZXIvYXdz[A-Za-z0-9+/=%]+`), AWSSessionToken},
	{regexp.MustCompile(`FQoGZXIvYXdz[A-Za-z0-9+/=%]+`), AWSSessionToken},
	{regexp.MustCompile(`gh[pousr]_[A-Za-z0-9]{30,}`), Token},
	{regexp.MustCompile(`github_pat_[A-Za-z0-9_]{20,}`), Token},
	{regexp.MustCompile(`glpat-[A-Za-z0-9_-]{20,}`), Token},
	{regexp.MustCompile(`xox[abposr]-[A-Za-z0-9-]{10,}`), Token},
	// EKS IAM tokens, as the kubelet's exec plugin mints them.
	{regexp.MustCompile(`k8s-aws-v1\.[A-Za-z0-9_=-]+`), Token},
	// JWTs: service account tokens, OIDC ID tokens.
	{regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*`), JWT},
}

func shapedTokens(b []byte, c *Counts) []byte {
	for _, p := range shapedPatterns {
		var sp spans
		for _, m := range p.re.FindAllIndex(b, -1) {
			sp.add(m[0], m[1], Redacted, p.class, c)
		}
		b = sp.apply(b)
	}
	return b
}

// bootstrapTokens redacts Kubernetes bootstrap tokens ([a-z0-9]{6}.[a-z0-9]{16}).
func bootstrapTokens(b []byte, c *Counts) []byte {
	var sp spans
	for i := range indexes(b, ".") {
		if i < 6 || i+17 > len(b) {
			continue
		}
		if (i > 6 && isAlnum(b[i-7])) || (i+17 < len(b) && isAlnum(b[i+17])) {
			continue
		}
		if every(b[i-6:i], isLowerAlnum) && every(b[i+1:i+17], isLowerAlnum) {
			sp.add(i-6, i+17, Redacted, Token, c)
		}
	}
	return sp.apply(b)
}

// every reports whether each byte of b is in the class.
func every(b []byte, in func(byte) bool) bool {
	for _, c := range b {
		if !in(c) {
			return false
		}
	}
	return true
}

// urlPasswords redacts the password in the user info of a URL
// (https://user:PASSWORD@host), and a user name that is a token
// (https://TOKEN@github.com/...).
func urlPasswords(b []byte, c *Counts) []byte {
	var sp spans
	for i := range indexes(b, "://") {
		a := i + 3
		e := a
		for e < len(b) && !endsAuthority(b[e]) {
			e++
		}
		at := bytes.LastIndexByte(b[a:e], '@')
		if at < 0 {
			continue
		}
		redactUserinfo(b, a, a+at, &sp, c)
	}
	return sp.apply(b)
}

// redactUserinfo redacts the secret part of the user info b[start:at].
func redactUserinfo(b []byte, start, at int, sp *spans, c *Counts) {
	ui := b[start:at]
	if colon := bytes.IndexByte(ui, ':'); colon >= 0 {
		if pw := ui[colon+1:]; len(pw) > 0 && !isRedacted(pw) {
			sp.add(start+colon+1, at, Redacted, URLPassword, c)
		}
		return
	}
	if looksLikeToken(ui) {
		sp.add(start, at, Redacted, URLPassword, c)
	}
}

func endsAuthority(c byte) bool {
	switch c {
	case '/', '?', '#', '"', '\'', '`', '<', '>', '\\', '(', ')', '{', '}', '[', ']':
		return true
	}
	return isBlank(c)
}

// looksLikeToken reports whether a word is long and random enough to be a
// token rather than a user name ("git", "ec2-user").
func looksLikeToken(w []byte) bool {
	if len(w) < 20 || isRedacted(w) {
		return false
	}
	digits := 0
	for _, c := range w {
		if isDigit(c) {
			digits++
		}
	}
	return digits > 0
}

// passwordFlagCommands take their password as -pPASSWORD or -p PASSWORD.
var passwordFlagCommands = []string{"mysql", "mariadb", "sshpass"}

// userFlagCommands take user:password after -u, --user or --proxy-user.
var userFlagCommands = []string{"curl"}

// commandPasswords redacts passwords given in a command's own syntax, on
// command lines seen in logs, ps output and /proc/*/cmdline.
func commandPasswords(b []byte, c *Counts) []byte {
	lower := asciiLower(b)
	var sp spans
	done := map[int]bool{}
	scan := func(cmds []string, fn func(words [][2]int)) {
		clear(done)
		for _, cmd := range cmds {
			for i := range indexes(lower, cmd) {
				// The command's name starts a word or follows a '/'.
				if i > 0 && !isBlank(b[i-1]) && b[i-1] != '/' && b[i-1] != '"' && b[i-1] != '\'' {
					continue
				}
				end := bytes.IndexByte(b[i:], '\n')
				if end < 0 {
					end = len(b)
				} else {
					end += i
				}
				if !done[end] {
					done[end] = true
					fn(splitWords(b, i, end))
				}
			}
		}
	}
	scan(passwordFlagCommands, func(ws [][2]int) {
		for k, w := range ws {
			word := b[w[0]:w[1]]
			switch {
			case string(word) == "-p" && k+1 < len(ws):
				next := ws[k+1]
				if !isRedacted(b[next[0]:next[1]]) {
					sp.add(next[0], next[1], Redacted, CommandPassword, c)
				}
			case bytes.HasPrefix(word, []byte("-p")) && len(word) > 2 && !isRedacted(word[2:]):
				sp.add(w[0]+2, w[1], Redacted, CommandPassword, c)
			}
		}
	})
	scan(userFlagCommands, func(ws [][2]int) {
		for k, w := range ws {
			word := b[w[0]:w[1]]
			start := -1
			switch {
			case (string(word) == "-u" || string(word) == "--user" || string(word) == "--proxy-user" || string(word) == "-U") && k+1 < len(ws):
				start = ws[k+1][0]
				w = ws[k+1]
			case bytes.HasPrefix(word, []byte("--user=")), bytes.HasPrefix(word, []byte("--proxy-user=")):
				start = w[0] + bytes.IndexByte(word, '=') + 1
			case bytes.HasPrefix(word, []byte("-u")) && len(word) > 2:
				start = w[0] + 2
			}
			if start < 0 {
				continue
			}
			if colon := bytes.IndexByte(b[start:w[1]], ':'); colon >= 0 && !isRedacted(b[start+colon+1:w[1]]) {
				sp.add(start+colon+1, w[1], Redacted, CommandPassword, c)
			}
		}
	})
	return sp.apply(b)
}

// splitWords splits b[start:end] into words at whitespace and NUL; a
// quoted part belongs to its word. The quotes stay in the word.
func splitWords(b []byte, start, end int) [][2]int {
	var ws [][2]int
	for i := start; i < end; {
		if isBlank(b[i]) {
			i++
			continue
		}
		j := i
		for j < end && !isBlank(b[j]) {
			if q := b[j]; q == '"' || q == '\'' {
				if k := bytes.IndexByte(b[j+1:end], q); k >= 0 {
					j += k + 2
					continue
				}
			}
			j++
		}
		ws = append(ws, [2]int{i, j})
		i = j
	}
	return ws
}

// bearerTokens redacts "Bearer TOKEN" outside an Authorization header
// (which assignments handle).
func bearerTokens(b []byte, c *Counts) []byte {
	lower := asciiLower(b)
	var sp spans
	for i := range indexes(lower, "bearer") {
		if i > 0 && isAlnum(b[i-1]) {
			continue
		}
		end := i + len("bearer")
		j := end
		for j < len(b) && isSpace(b[j]) {
			j++
		}
		if j == end {
			continue
		}
		k := j
		for k < len(b) && (isAlnum(b[k]) || bytes.IndexByte([]byte("._~+/=-"), b[k]) >= 0) {
			k++
		}
		tok := b[j:k]
		if len(tok) < 8 || isRedacted(b[j:]) || (len(tok) < 20 && every(tok, isLetter)) {
			continue
		}
		sp.add(j, k, Redacted, Authorization, c)
	}
	return sp.apply(b)
}
