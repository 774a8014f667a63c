package redact

import (
	"bytes"
	"encoding/base64"
	"regexp"
)

// pemPrivateKey matches a PEM private key block of any type (RSA, EC,
// PKCS#8, OpenSSH, encrypted, PGP), also when a log prefix precedes each of
// its lines, and to the end of the data when the END line was cut off.
var pemPrivateKey = regexp.MustCompile(`(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)`)

func pemKeys(b []byte, c *Counts) []byte {
	if !bytes.Contains(b, []byte("-----BEGIN ")) {
		return b
	}
	return pemPrivateKey.ReplaceAllFunc(b, func([]byte) []byte {
		c.inc(PrivateKey)
		return []byte(redactedKey)
	})
}

// base64PEMPrefix is "-----BEGIN" in base64, the form kubeconfigs
// (client-key-data) and Kubernetes secrets carry PEM blocks in.
var base64PEMPrefix = []byte("LS0tLS1CRUdJTi")

// openSSHPrefix is "openssh-key-v1" in base64: the body of an OpenSSH
// private key without its armour.
var openSSHPrefix = []byte("b3BlbnNzaC1rZXktdjE")

// minDERKey is the shortest base64 DER private key looked for: an
// Ed25519 PKCS#8 key is 48 bytes, 64 characters.
const minDERKey = 60

// base64Keys redacts private keys in base64 runs: base64 PEM private keys
// (certificates stay: they are public and show a node's identity and
// expiry), OpenSSH key bodies, and DER private keys without a PEM header
// (PKCS#1, PKCS#8, SEC 1, PKCS#12), also when wrapped over several lines.
func base64Keys(b []byte, c *Counts) []byte {
	var sp spans
	for i := 0; i < len(b); {
		if !isBase64(b[i]) {
			i++
			continue
		}
		j := i
		for j < len(b) && isBase64(b[j]) {
			j++
		}
		for k := 0; k < 2 && j < len(b) && b[j] == '='; k++ {
			j++
		}
		run := b[i:j]
		switch {
		case bytes.Contains(run, base64PEMPrefix):
			at := i + bytes.Index(run, base64PEMPrefix)
			if isBase64PrivatePEM(b[at:j]) {
				j = wrappedEnd(b, j)
				sp.add(at, j, Redacted, PrivateKey, c)
			}
		case bytes.HasPrefix(run, openSSHPrefix) || len(run) >= minDERKey && isDERPrivateKey(run):
			j = wrappedEnd(b, j)
			sp.add(i, j, Redacted, PrivateKey, c)
		}
		i = j
	}
	return sp.apply(b)
}

// wrappedEnd extends a base64 run that ends at j over the lines that
// continue it: lines (after indentation) of base64 alone, separated by
// newlines or by the \n escape of a JSON or Go string.
func wrappedEnd(b []byte, j int) int {
	for {
		k := j
		switch {
		case bytes.HasPrefix(b[k:], []byte(`\n`)):
			k += 2
		case bytes.HasPrefix(b[k:], []byte("\r\n")):
			k += 2
		case k < len(b) && b[k] == '\n':
			k++
		default:
			return j
		}
		for k < len(b) && (b[k] == ' ' || b[k] == '\t') {
			k++
		}
		e := k
		for e < len(b) && isBase64(b[e]) {
			e++
		}
		for n := 0; n < 2 && e < len(b) && b[e] == '='; n++ {
			e++
		}
		// A line of base64 alone: it ends the line or the string.
		if e-k < 4 || !(e == len(b) || b[e] == '\n' || b[e] == '\r' || b[e] == '"' || bytes.HasPrefix(b[e:], []byte(`\n`))) {
			return j
		}
		j = e
	}
}

// isBase64PrivatePEM decodes the head of a base64 PEM, enough to read its
// BEGIN line, and reports whether it is a private key.
func isBase64PrivatePEM(m []byte) bool {
	head := m[:min(len(m), 80)]
	head = head[:len(head)/4*4]
	dec, err := base64.StdEncoding.DecodeString(string(head))
	if err != nil {
		// Padding in the middle: not one base64 run; be safe.
		return true
	}
	return bytes.Contains(dec, []byte("PRIVATE KEY"))
}

// isDERPrivateKey reports whether base64 text decodes to the start of a
// DER private key: a SEQUENCE whose first element is a small INTEGER, the
// version of PKCS#1 (0), PKCS#8 (0, 1), SEC 1 (1) and PKCS#12 (3).
// Certificates, CSRs, CRLs and public keys start with a nested SEQUENCE and
// are kept.
func isDERPrivateKey(run []byte) bool {
	if run[0] != 'M' {
		return false
	}
	var dec [9]byte
	if _, err := base64.StdEncoding.Decode(dec[:], run[:12]); err != nil {
		return false
	}
	if dec[0] != 0x30 {
		return false
	}
	at := 2
	switch dec[1] {
	case 0x81:
		at = 3
	case 0x82:
		at = 4
	case 0x83:
		at = 5
	default:
		if dec[1] >= 0x80 {
			return false
		}
	}
	return dec[at] == 0x02 && dec[at+1] == 0x01 && dec[at+2] <= 3
}

func isBase64(c byte) bool { return isAlnum(c) || c == '+' || c == '/' }
