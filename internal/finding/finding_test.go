package finding

import (
	"fmt"
	"strings"
	"testing"
)

func TestCleanMessageRedactsBeforeItCuts(t *testing.T) {
	secret := "AKIAIOSFODNN7CANARY1"
	// The key straddles the cut: cut first, and what is left no longer
	// looks like an access key.
	msg := strings.Repeat("x ", (MaxMessageBytes-10)/2) + secret + " tail"
	got := CleanMessage(msg)
	if len(got) > MaxMessageBytes {
		t.Errorf("message of %d bytes, bound is %d", len(got), MaxMessageBytes)
	}
	if strings.Contains(got, "AKIAIOSFOD") {
		t.Errorf("part of the secret survived: …%s", got[len(got)-40:])
	}
	if got := CleanMessage("eth0: link down"); got != "eth0: link down" {
		t.Errorf("a harmless message changed: %q", got)
	}
}

// The Cleaner gives what CleanMessage gives, for new and remembered
// messages alike, and remembers a bounded number of them.
func TestCleanerIsCleanMessage(t *testing.T) {
	var c Cleaner
	msgs := []string{
		"eth0: link down",
		"login with password=Hunter2Canary failed",
		strings.Repeat("long line ", 300) + "token=ghp_0123456789abcdefghijABCDEFGHIJ012345",
	}
	for range 3 {
		for _, m := range msgs {
			if got, want := c.Clean(m), CleanMessage(m); got != want {
				t.Fatalf("Clean(%.30q…) = %.60q, CleanMessage gives %.60q", m, got, want)
			}
		}
	}
	if strings.Contains(c.Clean(msgs[1]), "Hunter2Canary") {
		t.Fatal("a remembered message is not redacted")
	}
	for i := range 3 * cleanerEntries {
		c.Clean(fmt.Sprint("message ", i))
	}
	if len(c.seen) > cleanerEntries {
		t.Fatalf("remembers %d messages, bound %d", len(c.seen), cleanerEntries)
	}
}
