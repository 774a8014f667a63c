// Package redacttest makes fresh private keys for tests that plant them in
// text and check that package redact leaves no trace of them.
package redacttest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

// ECKeyDER returns a new P-256 private key in SEC 1 DER.
func ECKeyDER(tb testing.TB) []byte {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return must(tb)(x509.MarshalECPrivateKey(k))
}

// ECKeyPEM returns a new P-256 private key in an "EC PRIVATE KEY" block.
func ECKeyPEM(tb testing.TB) []byte {
	tb.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ECKeyDER(tb)})
}

// Ed25519KeyDER returns a new Ed25519 private key in PKCS #8 DER.
func Ed25519KeyDER(tb testing.TB) []byte {
	tb.Helper()
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed) // it cannot fail (Go 1.24 and later)
	return must(tb)(x509.MarshalPKCS8PrivateKey(ed25519.NewKeyFromSeed(seed)))
}

// Ed25519KeyPEM returns a new Ed25519 private key in a PKCS #8 "PRIVATE
// KEY" block.
func Ed25519KeyPEM(tb testing.TB) []byte {
	tb.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: Ed25519KeyDER(tb)})
}

// must takes what an x509 marshaller returns, so that its call can be
// passed whole, and fails the test on its error.
func must(tb testing.TB) func(der []byte, err error) []byte {
	return func(der []byte, err error) []byte {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return der
	}
}
