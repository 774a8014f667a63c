package redact

import (
	"bytes"
	"slices"
)

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
		for i := range indexes(lower, kw) {
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
	return every(v[1:], func(c byte) bool { return c == '-' || c == '+' || isDigit(c) })
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
	for k := range indexes(lower, "value") {
		k += e
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
