package redact

import (
	"bytes"
	"regexp"
	"slices"
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
	for off := 0; ; {
		j := bytes.IndexByte(b[off:], '.')
		if j < 0 {
			break
		}
		i := off + j
		off = i + 1
		if i < 6 || i+17 > len(b) {
			continue
		}
		if (i > 6 && isAlnum(b[i-7])) || (i+17 < len(b) && isAlnum(b[i+17])) {
			continue
		}
		if allLowerAlnum(b[i-6:i]) && allLowerAlnum(b[i+1:i+17]) {
			sp.add(i-6, i+17, Redacted, Token, c)
		}
	}
	return sp.apply(b)
}

func allLowerAlnum(b []byte) bool {
	for _, c := range b {
		if !isLower(c) && !isDigit(c) {
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
	for off := 0; ; {
		i := bytes.Index(b[off:], []byte("://"))
		if i < 0 {
			break
		}
		a := off + i + 3
		e := a
		for e < len(b) && !endsAuthority(b[e]) {
			e++
		}
		off = a
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
			for off := 0; ; {
				i := bytes.Index(lower[off:], []byte(cmd))
				if i < 0 {
					break
				}
				i += off
				off = i + len(cmd)
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
	for off := 0; ; {
		i := bytes.Index(lower[off:], []byte("bearer"))
		if i < 0 {
			break
		}
		i += off
		off = i + 6
		if i > 0 && isAlnum(b[i-1]) {
			continue
		}
		j := off
		for j < len(b) && isSpace(b[j]) {
			j++
		}
		if j == off {
			continue
		}
		k := j
		for k < len(b) && (isAlnum(b[k]) || bytes.IndexByte([]byte("._~+/=-"), b[k]) >= 0) {
			k++
		}
		tok := b[j:k]
		if len(tok) < 8 || isRedacted(b[j:]) || (len(tok) < 20 && allLetters(tok)) {
			continue
		}
		sp.add(j, k, Redacted, Authorization, c)
	}
	return sp.apply(b)
}

func allLetters(b []byte) bool {
	for _, c := range b {
		if !isLower(c) && !isUpper(c) {
			return false
		}
	}
	return true
}

// assignKeywords find the names that isSecretName may accept, and proxy
// settings.
var assignKeywords = []string{"pass", "pwd", "secret", "token", "key", "auth", "credential", "creds", "signature", "cookie", "proxy"}

// maxName bounds a name, so that a keyword inside a long base64 run does
// not cost a scan of the run.
const maxName = 128

// authSchemes are HTTP authorization schemes: the word after
// "Authorization:" that is kept, the credential after it is redacted.
var authSchemes = []string{"bearer", "basic", "token", "digest", "negotiate", "ntlm", "aws4-hmac-sha256", "apikey", "sso-key"}

// assignments redacts values of names that say they hold a secret:
// key=value, key: value, "key": "value", key = "value", --flag value,
// "Header: value" inside a quoted string, and env lists (name: X_TOKEN,
// value: ...).
func assignments(b []byte, c *Counts) []byte {
	lower := asciiLower(b)
	var starts []int
	for _, kw := range assignKeywords {
		for off := 0; ; {
			i := bytes.Index(lower[off:], []byte(kw))
			if i < 0 {
				break
			}
			i += off
			off = i + len(kw)
			s := i
			for s > 0 && i-s < maxName && isNameChar(b[s-1]) {
				s--
			}
			if s > 0 && isNameChar(b[s-1]) {
				continue
			}
			starts = append(starts, s)
		}
	}
	if len(starts) == 0 {
		return b
	}
	slices.Sort(starts)
	starts = slices.Compact(starts)
	var sp spans
	for _, s := range starts {
		e := s
		for e < len(b) && e-s <= maxName && isNameChar(b[e]) {
			e++
		}
		if e-s > maxName {
			continue
		}
		assignment(b, s, e, &sp, c)
	}
	return sp.apply(b)
}

func isNameChar(c byte) bool { return isAlnum(c) || c == '_' || c == '-' || c == '.' }

// assignment handles the name b[s:e].
func assignment(b []byte, s, e int, sp *spans, c *Counts) {
	name := string(b[s:e])
	bare := trimDashes(name)
	flag := len(bare) < len(name)
	var secret bool
	if isEnvStyle(bare) {
		secret = isSecretEnvName(bare)
	} else {
		secret = isSecretName(bare)
	}
	proxy := isProxyName(bare)
	// A quote before the name either quotes the key ("token": ...) or
	// opens a string the name is in ("X-aws-ec2-metadata-token: V").
	var inString byte
	p := e
	if s > 0 && (b[s-1] == '"' || b[s-1] == '\'') {
		if p < len(b) && b[p] == b[s-1] {
			p++
		} else {
			inString = b[s-1]
		}
	}
	q := p
	for q < len(b) && isSpace(b[q]) {
		q++
	}
	var sep byte
	switch {
	case q < len(b) && b[q] == ':' && !(q+1 < len(b) && b[q+1] == ':'):
		sep, q = ':', q+1
		if q < len(b) && b[q] == '=' {
			q++
		}
	case q < len(b) && b[q] == '=':
		sep, q = '=', q+1
		if q < len(b) && b[q] == '>' {
			q++
		}
	case q > p && q < len(b) && b[q] != '\n' && (flag || secret && isStrongName(bare)):
		// --password X; aws configure set aws_secret_access_key X.
		sep = ' '
	default:
		if secret && isSecretEnvName(bare) {
			envListValue(b, s, e, sp, c)
		}
		return
	}
	if !secret && !proxy {
		return
	}
	for q < len(b) && isSpace(b[q]) {
		q++
	}
	vs, ve := valueExtent(b, s, q, sep, inString)
	v := b[vs:ve]
	if len(v) == 0 || isRedacted(v) || isNotSecretValue(v) {
		return
	}
	if sep == ' ' && (v[0] == '-' || (!flag && len(v) < 8)) {
		return
	}
	if !secret {
		// A proxy setting without a scheme: user:password@host:port.
		if at := bytes.LastIndexByte(v, '@'); at >= 0 && !bytes.Contains(v, []byte("://")) {
			redactUserinfo(b, vs, vs+at, sp, c)
		}
		return
	}
	class := Assignment
	// Authorization: Bearer X keeps its scheme.
	for _, scheme := range authSchemes {
		if len(v) > len(scheme) && isSpace(v[len(scheme)]) && string(asciiLower(v[:len(scheme)])) == scheme {
			vs += len(scheme)
			for vs < ve && isSpace(b[vs]) {
				vs++
			}
			class = Authorization
			break
		}
	}
	if vs < ve && !isRedacted(b[vs:ve]) {
		sp.add(vs, ve, Redacted, class, c)
	}
}

// valueExtent returns where the value starting at q ends. The name starts
// at s; sep is ':', '=' or ' '; inString is the quote of a string the name
// is in.
func valueExtent(b []byte, s, q int, sep, inString byte) (int, int) {
	eol := q
	for eol < len(b) && b[eol] != '\n' && b[eol] != '\r' {
		eol++
	}
	if q >= len(b) || isRedacted(b[q:]) {
		return q, q
	}
	switch {
	case b[q] == '"' || b[q] == '\'':
		return q + 1, closingQuote(b, q+1, eol, b[q])
	case b[q] == '[' && sep == ':':
		// Go's header dump: Authorization:[Bearer X].
		if k := bytes.IndexByte(b[q:eol], ']'); k > 0 && bytes.IndexByte(b[q+1:q+k], '[') < 0 {
			return q + 1, q + k
		}
	}
	if inString != 0 {
		return q, closingQuote(b, q, eol, inString)
	}
	if sep == ':' && startsLine(b, s) {
		end := eol
		for end > q && isSpace(b[end-1]) {
			end--
		}
		if isBlockIndicator(b[q:end]) {
			return q, blockEnd(b, s, eol)
		}
		// A header value ends at the end of the line, so does a YAML value.
		return q, end
	}
	// After a scheme word the credential runs to the end of the line.
	lw := asciiLower(b[q:eol])
	for _, scheme := range authSchemes {
		if len(lw) > len(scheme) && isSpace(lw[len(scheme)]) && string(lw[:len(scheme)]) == scheme {
			return q, eol
		}
	}
	query := s > 0 && (b[s-1] == '?' || b[s-1] == '&')
	end := q
	for end < len(b) && !endsValue(b, end, sep, query) {
		end++
	}
	return q, end
}

// endsValue reports whether b[i] ends an unquoted value: whitespace; for
// key: value in a line (flow YAML, logs) also , } and ]; in a URL query &
// and #; and a quote that closes a string the value is in, which is one
// followed by whitespace or punctuation (a quote inside a password is not).
func endsValue(b []byte, i int, sep byte, query bool) bool {
	switch ch := b[i]; {
	case isBlank(ch):
		return true
	case ch == ',' || ch == '}' || ch == ']':
		return sep == ':'
	case ch == '&' || ch == '#':
		return query
	case ch == '"' || ch == '\'' || ch == '`':
		return i+1 == len(b) || isBlank(b[i+1]) || bytes.IndexByte([]byte(",;:}])&"), b[i+1]) >= 0
	}
	return false
}

// closingQuote returns the index of the quote q that closes a string
// starting at i, honouring backslash escapes, or end.
func closingQuote(b []byte, i, end int, q byte) int {
	for ; i < end; i++ {
		switch b[i] {
		case '\\':
			i++
		case q:
			return i
		}
	}
	return end
}

// startsLine reports whether only indentation, a YAML list marker or a
// quote precede the name at s on its line.
func startsLine(b []byte, s int) bool {
	i := s - 1
	if i >= 0 && (b[i] == '"' || b[i] == '\'') {
		i--
	}
	for i >= 0 && (b[i] == ' ' || b[i] == '\t' || b[i] == '-') {
		i--
	}
	return i < 0 || b[i] == '\n'
}

func isBlockIndicator(v []byte) bool {
	if len(v) == 0 || (v[0] != '|' && v[0] != '>') {
		return false
	}
	for _, c := range v[1:] {
		if c != '-' && c != '+' && !isDigit(c) {
			return false
		}
	}
	return true
}

// blockEnd returns the end of a YAML block scalar whose key starts at s
// and whose indicator line ends at eol: the last following line indented
// more than the key.
func blockEnd(b []byte, s, eol int) int {
	ls := s
	for ls > 0 && b[ls-1] != '\n' {
		ls--
	}
	indent := 0
	for ls+indent < len(b) && (b[ls+indent] == ' ' || b[ls+indent] == '-') {
		indent++
	}
	end := eol
	for i := eol; i < len(b); {
		j := i + 1
		for j < len(b) && b[j] != '\n' {
			j++
		}
		line := b[i+1 : j]
		k := 0
		for k < len(line) && line[k] == ' ' {
			k++
		}
		if k < len(line) && k <= indent && line[k] != '\r' {
			break
		}
		if k < len(line) {
			end = j
		}
		i = j
		if j >= len(b) {
			break
		}
	}
	return end
}

// envListValue redacts the value of an env list entry whose name, b[s:e],
// says it is a secret: "- name: X_TOKEN\n  value: V" in YAML,
// {"name": "X_TOKEN", "value": "V"} in JSON.
func envListValue(b []byte, s, e int, sp *spans, c *Counts) {
	i := s - 1
	if i >= 0 && (b[i] == '"' || b[i] == '\'') {
		i--
	}
	for i >= 0 && isSpace(b[i]) {
		i--
	}
	if i < 0 || (b[i] != ':' && b[i] != '=') {
		return
	}
	i--
	if i >= 0 && (b[i] == '"' || b[i] == '\'') {
		i--
	}
	if i < 3 || string(asciiLower(b[i-3:i+1])) != "name" || (i >= 4 && isNameChar(b[i-4])) {
		return
	}
	// The value key follows within the entry: on one of the next lines or
	// after a comma.
	limit := e
	for n := 0; n < 3 && limit < len(b); limit++ {
		if b[limit] == '\n' {
			n++
		}
		if b[limit] == '}' {
			break
		}
	}
	lower := asciiLower(b[e:limit])
	for off := 0; ; {
		k := bytes.Index(lower[off:], []byte("value"))
		if k < 0 {
			return
		}
		k += e + off
		off = k - e + 5
		if isNameChar(b[k-1]) || (k+5 < len(b) && isNameChar(b[k+5])) {
			continue
		}
		q := k + 5
		if q < len(b) && (b[q] == '"' || b[q] == '\'') {
			q++
		}
		for q < len(b) && isSpace(b[q]) {
			q++
		}
		if q >= len(b) || (b[q] != ':' && b[q] != '=') {
			continue
		}
		q++
		for q < len(b) && isSpace(b[q]) {
			q++
		}
		vs, ve := valueExtent(b, k, q, ':', 0)
		if v := b[vs:ve]; len(v) > 0 && !isRedacted(v) {
			sp.add(vs, ve, Redacted, Assignment, c)
		}
		return
	}
}

func trimDashes(s string) string {
	for len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	return s
}

// isEnvStyle reports whether a name is written like an environment
// variable (DB_PASS, SSL_KEY).
func isEnvStyle(name string) bool {
	if name == "" || !isUpper(name[0]) {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isUpper(c) && !isDigit(c) && c != '_' {
			return false
		}
	}
	return true
}

// isStrongName reports whether a name is an identifier for a secret that
// may be followed by its value after a space alone, as in `aws configure
// set aws_secret_access_key VALUE`: a multi-word snake_case name.
func isStrongName(name string) bool {
	return bytes.IndexByte([]byte(name), '_') > 0
}

// isNotSecretValue reports values that are settings rather than secrets,
// and shell expansions ($(cmd), ${VAR}), which name where a secret comes
// from.
func isNotSecretValue(v []byte) bool {
	switch string(asciiLower(v)) {
	case "true", "false", "yes", "no", "on", "off", "null", "nil", "none", "~", "{}", "[]", "|", ">":
		return true
	}
	return v[0] == '{' || (v[0] == '[' && !isRedacted(v)) || bytes.HasPrefix(v, []byte("$(")) || bytes.HasPrefix(v, []byte("${"))
}
