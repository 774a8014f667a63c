package finding

import (
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
