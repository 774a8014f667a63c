// Package canary finds planted secrets (canaries) in a diagnostics
// bundle, for the tests that build one from the redaction corpus
// (internal/diag/testdata/corpus). A canary counts as leaked when any
// recognisable part of it is in a bundle file, as it is or after
// percent-decoding or base64-decoding the file's text: a registry auth is
// base64 of user:password, a presigned URL percent-encodes its token.
package canary

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Canary is one planted secret.
type Canary struct {
	Class, Value string
}

// Dir is internal/diag/testdata, where the corpus and its canaries are.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata")
}

// Load reads testdata/canaries.txt: "CLASS VALUE" lines, # comments.
func Load() ([]Canary, error) {
	f, err := os.Open(filepath.Join(Dir(), "canaries.txt"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Canary
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		class, value, ok := strings.Cut(line, " ")
		if !ok || len(value) < 10 {
			return nil, fmt.Errorf("canaries.txt: bad line %q", line)
		}
		out = append(out, Canary{class, value})
	}
	return out, sc.Err()
}

// parts are the pieces of a canary whose presence means it leaked: all
// of it; for a CANARY-class-RANDOM value its random tail; for other
// generated key or token values every 16 characters past the first 16,
// which may be a shared prefix (LS0tLS1CRUdJTi, eyJhbGciOi, ghp_).
func (c Canary) parts() []string {
	out := []string{c.Value}
	if strings.HasPrefix(c.Value, "CANARY-") {
		return append(out, c.Value[strings.LastIndexByte(c.Value, '-')+1:])
	}
	// The base64 of user:CANARY-...: its decoded form is a canary of its
	// own, and pieces of it may be shared with other such encodings.
	if dec, err := base64.StdEncoding.DecodeString(c.Value); err == nil && bytes.Contains(dec, []byte("CANARY-")) {
		return out
	}
	for i := 16; i+16 <= len(c.Value); i += 8 {
		out = append(out, c.Value[i:i+16])
	}
	return out
}

// Leak is a canary found in a file.
type Leak struct {
	File   string
	Canary Canary
	Form   string // raw, percent-decoded or base64-decoded
}

func (l Leak) String() string {
	return fmt.Sprintf("%s: %s canary %q (%s)", l.File, l.Canary.Class, l.Canary.Value, l.Form)
}

// Find returns the canaries leaked into files (name → content).
func Find(files map[string][]byte, canaries []Canary) []Leak {
	var out []Leak
	for name, data := range files {
		forms := []struct {
			name string
			b    []byte
		}{{"raw", data}, {"percent-decoded", percentDecode(data)}, {"base64-decoded", base64Decode(data)}}
		for _, c := range canaries {
			for _, f := range forms {
				if containsAny(f.b, c.parts()) {
					out = append(out, Leak{name, c, f.name})
					break
				}
			}
		}
	}
	return out
}

func containsAny(b []byte, parts []string) bool {
	for _, p := range parts {
		if bytes.Contains(b, []byte(p)) {
			return true
		}
	}
	return false
}

// percentDecode decodes every valid %XX and leaves the rest.
func percentDecode(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '%' && i+2 < len(b) && isHex(b[i+1]) && isHex(b[i+2]) {
			out = append(out, unhex(b[i+1])<<4|unhex(b[i+2]))
			i += 2
			continue
		}
		out = append(out, b[i])
	}
	return out
}

// base64Decode returns the decodings of every base64 run of 12 or more
// characters, standard or URL alphabet, one a line.
func base64Decode(b []byte) []byte {
	var out bytes.Buffer
	isB64 := func(c byte) bool {
		return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_'
	}
	for i := 0; i < len(b); {
		if !isB64(b[i]) {
			i++
			continue
		}
		j := i
		for j < len(b) && isB64(b[j]) {
			j++
		}
		if run := string(b[i:j]); len(run) >= 12 {
			for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
				// Every alignment: a run may start inside a word.
				for off := range 4 {
					if off >= len(run) {
						break
					}
					s := run[off:]
					s = s[:len(s)/4*4+min(len(s)%4, 3)]
					if len(s)%4 == 1 {
						s = s[:len(s)-1]
					}
					if dec, err := enc.DecodeString(s); err == nil {
						out.Write(dec)
						out.WriteByte('\n')
					}
				}
			}
		}
		for j < len(b) && b[j] == '=' {
			j++
		}
		i = j
	}
	return out.Bytes()
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
