package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/pem"
	"slices"
	"strings"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/redact/redacttest"
)

// secretForm is a context a secret appears in, and the characters such a
// secret is made of.
type secretForm struct {
	context  string // %s is the secret
	alphabet string
	size     int // exact length, 0 for 8 to 40
}

const (
	alnum      = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	passChars  = alnum + "._~+-!%^*"
	upperDigit = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b64Chars   = alnum + "+/"
)

var secretForms = []secretForm{
	{"password=%s", passChars, 0},
	{"DB_PASS=%s", passChars, 0},
	{"export DB_PASSWORD='%s'", passChars, 0},
	{`{"token": "%s", "id": 1}`, passChars, 0},
	{`  auth = "%s"`, b64Chars, 0},
	{`{"auths":{"r.io":{"auth":"%s"}}}`, b64Chars, 0},
	{"Authorization: Bearer %s", alnum + "._~+/-", 0},
	{"https://user:%s@host.example.com/path", alnum + "._~-!$*+,;=%", 0},
	{"HTTPS_PROXY=http://u:%s@proxy:3128", alnum + "._~-", 0},
	{"mysql -u root -p%s db", passChars, 0},
	{"tool --password %s --verbose", passChars, 0},
	{`curl -H "X-aws-ec2-metadata-token: %s" http://169.254.169.254/`, b64Chars + "=", 0},
	{"aws_secret_access_key = %s", b64Chars, 40},
	{"ghp_%s", alnum, 36},
	{"AKIA%s", upperDigit, 16},
	{"k8s-aws-v1.%s", alnum + "_-", 0},
	{"eyJhbGciOiJSUzI1NiJ9.%s.c2lnbmF0dXJlLWJ5dGVz", alnum + "_-", 0},
	{"- name: GITHUB_TOKEN\n  value: %s", passChars, 0},
}

// FuzzRedact checks, for random text around a secret in each known form,
// that Scan never panics, leaves no trace of the secret, never adds
// anything but placeholders, does not modify its input, and is idempotent.
func FuzzRedact(f *testing.F) {
	key := redacttest.ECKeyPEM(f)
	block, _ := pem.Decode(key)
	der := base64.StdEncoding.EncodeToString(block.Bytes)
	forms := slices.Concat(secretForms, []secretForm{
		{context: string(key)},
		{context: "+ echo " + der + " | base64 -d"},
		{context: "client-key-data: " + base64.StdEncoding.EncodeToString(key)},
	})
	f.Add("log line before", "and after", uint8(0), []byte("s3cr3t-value"))
	f.Add(`{"a":"`, `"}`, uint8(7), []byte("x"))
	f.Add("-----BEGIN", "password: |", uint8(12), []byte{0, 1, 2, 255})
	f.Add("name: x\x00", "\x00value: y", uint8(17), []byte("abcdefgh"))
	f.Fuzz(func(t *testing.T, before, after string, form uint8, seed []byte) {
		fm := forms[int(form)%len(forms)]
		secret := ""
		if fm.alphabet != "" {
			secret = makeSecret(fm, seed)
		}
		ctx := fm.context
		if secret != "" {
			ctx = strings.ReplaceAll(ctx, "%s", secret)
		}
		in := []byte(before + "\n" + ctx + "\n" + after)
		orig := bytes.Clone(in)
		out, counts := Scan(in)
		if !bytes.Equal(in, orig) {
			t.Fatal("Scan modified its input")
		}
		for _, m := range markers(fm, secret, key, der) {
			if !strings.Contains(before+after, m) && bytes.Contains(out, []byte(m)) {
				t.Fatalf("secret %q survived in %q", m, out)
			}
		}
		if counts.Total() == 0 {
			t.Fatalf("nothing counted for %q", out)
		}
		if !isSubsequence(stripPlaceholders(out), stripPlaceholders(in)) {
			t.Fatalf("Scan added content: %q -> %q", in, out)
		}
		again, c2 := Scan(out)
		if !bytes.Equal(again, out) || len(c2) != 0 {
			t.Fatalf("not idempotent: %q -> %q (%v)", out, again, c2)
		}
	})
}

// makeSecret builds a secret of the form's characters from the fuzzer's
// seed; it starts with a letter and holds a digit, as generated
// credentials do.
func makeSecret(fm secretForm, seed []byte) string {
	n := fm.size
	if n == 0 {
		n = 8 + len(seed)%33
	}
	var s strings.Builder
	for i := range n {
		var c byte
		if len(seed) > 0 {
			c = seed[i%len(seed)] + byte(i*7)
		} else {
			c = byte(i * 13)
		}
		s.WriteByte(fm.alphabet[int(c)%len(fm.alphabet)])
	}
	b := []byte(s.String())
	b[0] = fm.alphabet[int(b[0])%26]
	if fm.size == 0 {
		b[len(b)-1] = '7'
	} else if !strings.ContainsAny(string(b), "0123456789") && strings.Contains(fm.alphabet, "7") {
		b[len(b)-1] = '7'
	}
	return string(b)
}

// markers are what must not survive: the secret, or for keys their body.
func markers(fm secretForm, secret string, key []byte, der string) []string {
	if secret != "" {
		return []string{secret}
	}
	var out []string
	for _, l := range strings.Split(string(key), "\n") {
		if l != "" && !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	return append(out, der[:40], base64.StdEncoding.EncodeToString(key)[:40])
}

func stripPlaceholders(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte(redactedKey), nil)
	return bytes.ReplaceAll(b, []byte(Redacted), nil)
}

func isSubsequence(sub, of []byte) bool {
	i := 0
	for _, c := range of {
		if i < len(sub) && sub[i] == c {
			i++
		}
	}
	return i == len(sub)
}
