package redact

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"testing"
)

func ecKeyPEM(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func TestRedact(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"token: abc.def", "token: [REDACTED]"},
		{`{"token":"abc","id":1}`, `{"token":"[REDACTED]","id":1}`},
		{`aws_secret_access_key = wJalrXUt`, `aws_secret_access_key = [REDACTED]`},
		{"PASSWORD=x y", "PASSWORD=[REDACTED] y"},
		{"- name: GITHUB_TOKEN\n  value: ghp_abc\n", "- name: GITHUB_TOKEN\n  value: [REDACTED]\n"},
		{`{"name": "DB_PASSWORD", "value": "pw"}`, `{"name": "DB_PASSWORD", "value": "[REDACTED]"}`},
		{"Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [REDACTED]"},
		{"aws key AKIAIOSFODNN7EXAMPLE used", "aws key [REDACTED] used"},
		// Not secrets: left alone.
		{"tokens: 5", "tokens: 5"},
		{"kernel.pid_max = 4194304", "kernel.pid_max = 4194304"},
		{"Basic authentication failed", "Basic authentication failed"},
		{"key: nvme1n1", "key: nvme1n1"},
		{"certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t", "certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"},
	} {
		got, _ := Bytes([]byte(c.in))
		if string(got) != c.want {
			t.Errorf("Bytes(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	key := ecKeyPEM(t)
	in := fmt.Sprintf("before\n%safter\nb64 %s end", key, base64.StdEncoding.EncodeToString(key))
	got, n := Bytes([]byte(in))
	if want := "before\n[REDACTED PRIVATE KEY]\nafter\nb64 [REDACTED] end"; string(got) != want || n != 2 {
		t.Errorf("Bytes(keys) = %q (%d), want %q (2)", got, n, want)
	}
	// A key cut off by a size limit is redacted to the end.
	got, _ = Bytes(key[:len(key)/2])
	if string(got) != "[REDACTED PRIVATE KEY]" {
		t.Errorf("truncated key: %q", got)
	}
}
