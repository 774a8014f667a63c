// Package finding is the model every detector produces and every publisher
// consumes: a finding names a node condition, a reason and a severity, and
// says how it recovers. Log rules and host probes emit the same type, so a
// new detector plugs in without touching state or publishers.
package finding

import (
	"fmt"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/redact"
)

// Severity follows EKS's Node Monitoring Agent: Fatal sets the condition
// False, Warning becomes a Kubernetes Event and never touches a condition.
type Severity string

const (
	Fatal   Severity = "Fatal"
	Warning Severity = "Warning"
)

// ParseSeverity accepts the two severities exactly as written above.
func ParseSeverity(s string) (Severity, error) {
	switch Severity(s) {
	case Fatal, Warning:
		return Severity(s), nil
	}
	return "", fmt.Errorf("unknown severity %q (want Fatal or Warning)", s)
}

// The five condition types repair automation acts on (status True = healthy).
const (
	KernelReady              = "KernelReady"
	ContainerRuntimeReady    = "ContainerRuntimeReady"
	NetworkingReady          = "NetworkingReady"
	StorageReady             = "StorageReady"
	AcceleratedHardwareReady = "AcceleratedHardwareReady"
)

// Conditions lists the condition types in the order they are displayed.
var Conditions = []string{KernelReady, ContainerRuntimeReady, NetworkingReady, StorageReady, AcceleratedHardwareReady}

// IsCondition reports whether t is one of the five condition types.
func IsCondition(t string) bool {
	for _, c := range Conditions {
		if c == t {
			return true
		}
	}
	return false
}

// Recovery says what clears an active Fatal finding besides an operator.
type Recovery struct {
	// ExpireAfter clears the finding when it has not been seen again for
	// this long (0 = never expires).
	ExpireAfter time.Duration `json:"expireAfter,omitempty"`
	// KeepAcrossReboot keeps the finding when the boot ID changes. By
	// default a reboot clears it: log evidence belongs to the boot it was
	// logged in.
	KeepAcrossReboot bool `json:"keepAcrossReboot,omitempty"`
	// Probe marks a finding owned by a periodic probe: the probe clears it
	// once the check passes again (with its own hysteresis).
	Probe bool `json:"probe,omitempty"`
}

// Finding is one detected problem.
type Finding struct {
	// ID is unique and increases in detection order; it is assigned when
	// the finding is committed to the state file.
	ID        uint64   `json:"id"`
	Condition string   `json:"condition"`
	Reason    string   `json:"reason"`
	Severity  Severity `json:"severity"`
	Message   string   `json:"message"`
	// Key distinguishes independent instances of one reason (a device, a
	// pod); active Fatal findings are unique per (Condition, Reason, Key).
	Key string `json:"key,omitempty"`
	// Rule is the rule or probe that produced the finding.
	Rule string `json:"rule"`
	// Source is where the evidence came from: "kmsg", "journal",
	// "file:/var/log/…" or "probe:<name>".
	Source   string    `json:"source"`
	Detected time.Time `json:"detected"`
	LastSeen time.Time `json:"lastSeen"`
	// Count is how many times the evidence was seen while active.
	Count    int      `json:"count"`
	BootID   string   `json:"bootID,omitempty"`
	Recovery Recovery `json:"recovery"`
	// Recurrence is set when the reason was also seen in earlier boots
	// within its recurrence window (internal/policy): a reboot did not
	// cure it.
	Recurrence *Recurrence `json:"recurrence,omitempty"`
}

// Recurrence says that a Fatal reason came back after reboots.
type Recurrence struct {
	// Reason is the reason as detected; the finding's Reason differs from
	// it when the recurrence was escalated.
	Reason string `json:"reason"`
	// Reboots is how many earlier boots within Within saw Reason.
	Reboots int           `json:"reboots"`
	Within  time.Duration `json:"within"`
	// Escalated says the finding carries the escalation's reason.
	Escalated bool `json:"escalated,omitempty"`
}

// Describe says what r means, for messages: "recurred after 2 reboots in
// 24h", naming the reason detected when it was escalated.
func (r *Recurrence) Describe() string {
	reboots := "reboots"
	if r.Reboots == 1 {
		reboots = "reboot"
	}
	s := fmt.Sprintf("recurred after %d %s in %s", r.Reboots, reboots, window(r.Within))
	if r.Escalated {
		s = r.Reason + " " + s + ", escalated"
	}
	return s
}

// window writes a duration as operators write it: 24h, 90m.
func window(d time.Duration) string {
	switch {
	case d > 0 && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d > 0 && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// Identity is what makes two Fatal findings "the same problem".
func (f *Finding) Identity() string {
	return f.Condition + "/" + f.Reason + "/" + f.Key
}

// MaxMessageBytes bounds a single finding's message; log lines can be long.
const MaxMessageBytes = 512

// CleanMessage is what every finding message passes through where it is
// made: credentials a log line carried (a URL password, a token) are
// redacted before the message reaches the state file, the journal or the
// cluster, and the message is bounded. Redaction comes first, so that a
// cut cannot leave half a secret that no pattern recognizes.
func CleanMessage(s string) string {
	return Truncate(redact.String(s), MaxMessageBytes)
}

// Cleaner is CleanMessage with a memory of the messages it cleaned last:
// a flood of identical lines makes identical messages, and redaction costs
// microseconds where the rest of a line's path costs a fraction of one.
// CleanMessage is a pure function of its input, so a remembered result is
// exactly what cleaning again would give: nothing unredacted gets through.
// Results are copies that share no memory with the text passed in. The
// zero value is ready; a Cleaner is not safe for concurrent use.
type Cleaner struct {
	seen map[string]string
}

const (
	// cleanerEntries bounds the messages remembered; past it they are
	// forgotten all at once, which costs less than tracking their use.
	cleanerEntries = 256
	// cleanerLongest is the longest text remembered, bounding the memory
	// of the cache to about cleanerEntries × cleanerLongest.
	cleanerLongest = 2 << 10
)

// Clean returns CleanMessage(s).
func (c *Cleaner) Clean(s string) string {
	if len(s) > cleanerLongest {
		return strings.Clone(CleanMessage(s))
	}
	if m, ok := c.seen[s]; ok {
		return m
	}
	if c.seen == nil || len(c.seen) >= cleanerEntries {
		c.seen = make(map[string]string, cleanerEntries)
	}
	k := strings.Clone(s)
	m := CleanMessage(k)
	c.seen[k] = m
	return m
}

// Truncate cuts s to at most n bytes on a UTF-8 boundary, marking the cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ell = "…"
	cut := n - len(ell)
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + ell
}

// Clear asks to end active findings. Probes send it when their check passes
// again; operators send it through nodehealthctl.
type Clear struct {
	Condition string `json:"condition,omitempty"`
	Reason    string `json:"reason"`
	// Key limits the clear to one instance; empty with AllKeys false means
	// the finding with an empty key.
	Key     string `json:"key,omitempty"`
	AllKeys bool   `json:"allKeys,omitempty"`
	// By says who cleared, for the log ("operator", "probe:<name>").
	By string `json:"by"`
}

// Matches reports whether c applies to f.
// An escalated finding is also matched by the reason it was detected as,
// so that the probe that raised it, or an operator who knows that name,
// can clear it.
func (c Clear) Matches(f *Finding) bool {
	if f.Reason != c.Reason && (f.Recurrence == nil || !f.Recurrence.Escalated || f.Recurrence.Reason != c.Reason) {
		return false
	}
	if c.Condition != "" && f.Condition != c.Condition {
		return false
	}
	return c.AllKeys || f.Key == c.Key
}
