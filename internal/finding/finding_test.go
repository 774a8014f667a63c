package finding

import (
	"fmt"
	"strings"
	"testing"
	"time"
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

// TestClearMatchesEscalatedByDetectedReason: the probe that raised a
// finding clears it by the reason it raised, also once the finding was
// escalated to another reason; a finding that only recurred is not
// matched by a reason it never had.
func TestClearMatchesEscalatedByDetectedReason(t *testing.T) {
	esc := Finding{Reason: "Replaced", Key: "k", Recurrence: &Recurrence{Reason: "Detected", Reboots: 1, Escalated: true}}
	for _, c := range []struct {
		clear Clear
		f     Finding
		want  bool
	}{
		{Clear{Reason: "Detected", Key: "k"}, esc, true},
		{Clear{Reason: "Replaced", Key: "k"}, esc, true},
		{Clear{Reason: "Detected", Key: "other"}, esc, false},
		{Clear{Reason: "Other", Key: "k"}, Finding{Reason: "R", Key: "k", Recurrence: &Recurrence{Reason: "Other", Reboots: 1}}, false},
	} {
		if got := c.clear.Matches(&c.f); got != c.want {
			t.Errorf("%+v matches %s/%s = %v, want %v", c.clear, c.f.Reason, c.f.Key, got, c.want)
		}
	}
}

func TestRecurrenceDescribe(t *testing.T) {
	for _, c := range []struct {
		r    Recurrence
		want string
	}{
		{Recurrence{Reason: "R", Reboots: 1, Within: 24 * time.Hour}, "recurred after 1 reboot in 24h"},
		{Recurrence{Reason: "R", Reboots: 3, Within: 90 * time.Minute, Escalated: true}, "R recurred after 3 reboots in 90m, escalated"},
	} {
		if got := c.r.Describe(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.r, got, c.want)
		}
	}
}
