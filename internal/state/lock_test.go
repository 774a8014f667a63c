package state

import (
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"
)

// TestLiveSections: a published section is read for every query (so it is
// current), survives SetLive, and one that fails is left out without
// taking the others or the socket down.
func TestLiveSections(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, "b", time.Now(), discard())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var temp atomic.Int64
	temp.Store(40)
	s.PublishLive("gpu", func() any { return map[string]int64{"temperatureC": temp.Load()} })
	s.PublishLive("broken", func() any { panic("bug in a subsystem") })
	s.PublishLive("unmarshalable", func() any { return func() {} })

	read := func() map[string]int {
		t.Helper()
		l, err := QueryLive(dir, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := l.Sections["broken"]; ok {
			t.Fatalf("a failing section was sent: %s", l.Sections["broken"])
		}
		if _, ok := l.Sections["unmarshalable"]; ok {
			t.Fatalf("a section that cannot be marshalled was sent: %s", l.Sections["unmarshalable"])
		}
		var got map[string]int
		if err := json.Unmarshal(l.Sections["gpu"], &got); err != nil {
			t.Fatalf("gpu section %q: %v", l.Sections["gpu"], err)
		}
		return got
	}
	if got := read(); got["temperatureC"] != 40 {
		t.Fatalf("got %v", got)
	}
	temp.Store(41)
	s.SetLive(Live{PID: 7, Unsaved: &SaveFailure{Err: "disk full"}})
	if got := read(); got["temperatureC"] != 41 {
		t.Fatalf("section not read afresh, or dropped by SetLive: %v", got)
	}
	l, err := QueryLive(dir, time.Second)
	if err != nil || l.PID != 7 || l.Unsaved == nil {
		t.Fatalf("live %+v, %v", l, err)
	}
}
