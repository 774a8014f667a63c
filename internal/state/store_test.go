package state

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The cluster publisher's event memory has a section of its own; a state
// file written when it was part of the cluster link is read into it.
func TestSentEventsSectionAndFormerPlace(t *testing.T) {
	dir := t.TempDir()
	old := `{"version":` + strconv.Itoa(Version) + `,"cluster":{"node":"n","connected":true,"pendingWrites":0,"events":[{"condition":"KernelReady","reason":"SoftLockup","message":"m","name":"n.1","count":2,"first":"2026-01-01T00:00:00Z","written":"2026-01-01T00:00:00Z","nodeUID":"u"}]}}`
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.SentEvents) != 1 || st.SentEvents[0].Name != "n.1" || st.SentEvents[0].Count != 2 || len(st.Cluster.FormerEvents) != 0 {
		t.Fatalf("sent events %+v, link %+v", st.SentEvents, st.Cluster)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"sentEvents":[`) || strings.Contains(string(b), `"events":`) {
		t.Fatalf("written as %s", b)
	}
}
