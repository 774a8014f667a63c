package console

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/publish"
)

// A coalesced finding says how many occurrences it stands for.
func TestCoalescedFindingShowsItsCount(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	u := publish.Update{New: []finding.Finding{
		{ID: 1, Condition: finding.StorageReady, Reason: "IOError", Severity: finding.Warning, Message: "lost page write", Source: "kmsg", Detected: at, Count: 1},
		{ID: 2, Condition: finding.StorageReady, Reason: "IOError", Severity: finding.Warning, Message: "lost page write", Source: "kmsg", Detected: at, Count: 199999},
	}}
	var text, js bytes.Buffer
	New(&text, false).Publish(u)
	New(&js, true).Publish(u)
	lines := strings.Split(strings.TrimSpace(text.String()), "\n")
	if len(lines) != 2 || strings.Contains(lines[0], "×") || !strings.Contains(lines[1], "[kmsg #2] ×199999") {
		t.Errorf("text:\n%s", text.String())
	}
	lines = strings.Split(strings.TrimSpace(js.String()), "\n")
	if len(lines) != 2 || strings.Contains(lines[0], `"count"`) || !strings.Contains(lines[1], `"count":199999`) {
		t.Errorf("json:\n%s", js.String())
	}
}
