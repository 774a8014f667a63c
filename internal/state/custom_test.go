package state

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// TestCustomConditionsOwnedAcrossRestart: a custom type deleted from the
// config stays owned, through the state file, so that it is still removed
// from the Node after a restart; it leaves the conditions at once.
func TestCustomConditionsOwnedAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Unix(1000, 0)
	store, st, err := Open(dir, "boot", t0, discard())
	if err != nil {
		t.Fatal(err)
	}
	foo := condition.Declared{HealthyReason: "FooOK", HealthyMessage: "foo is fine"}
	if !st.DeclareConditions(map[string]condition.Declared{"FooReady": foo}, t0) {
		t.Fatal("a new declaration is no change")
	}
	st.UpdateConditions([]string{finding.KernelReady, "FooReady"}, "", t0)
	if c := st.Conditions["FooReady"]; c.Status != condition.True || c.Reason != "FooOK" || c.Message != "foo is fine" {
		t.Fatalf("healthy custom condition: %+v", c)
	}
	st.Raise(finding.Finding{Condition: "FooReady", Reason: "FooDown", Severity: finding.Fatal, Message: "down", Detected: t0}, false, &Changes{})
	st.UpdateConditions([]string{finding.KernelReady, "FooReady"}, "", t0)
	if c := st.Conditions["FooReady"]; c.Status != condition.False || c.Reason != "FooDown" || c.Message != "FooDown: down" {
		t.Fatalf("failing custom condition: %+v", c)
	}
	// Deleted from the config.
	t1 := t0.Add(time.Minute)
	if !st.DeclareConditions(nil, t1) {
		t.Fatal("a removal is no change")
	}
	st.UpdateConditions([]string{finding.KernelReady}, "", t1)
	if _, ok := st.Conditions["FooReady"]; ok {
		t.Fatal("a removed type is still computed")
	}
	if err := store.Save(st, t1); err != nil {
		t.Fatal(err)
	}
	store.Close()
	store, st, err = Open(dir, "boot", t1, discard())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if st.DeclareConditions(nil, t1.Add(time.Hour)) {
		t.Error("an already removed type changed again")
	}
	if owned := st.OwnedConditions(); !slices.Equal(owned, append(slices.Clone(finding.Conditions), "FooReady")) {
		t.Fatalf("owned after restart: %v", owned)
	}
	if c := st.Custom["FooReady"]; !c.Removed.Equal(t1) {
		t.Errorf("removal time %v, want %v", c.Removed, t1)
	}
	// Declared again: owned and computed again.
	st.DeclareConditions(map[string]condition.Declared{"FooReady": foo}, t1)
	if !st.Custom["FooReady"].Removed.IsZero() {
		t.Error("a type declared again is still marked removed")
	}
}

func TestRemovedConditionsAreBounded(t *testing.T) {
	st := New("boot", time.Unix(0, 0))
	all := map[string]condition.Declared{}
	for i := range MaxRemovedConditions + 10 {
		all[fmt.Sprintf("T%03dReady", i)] = condition.Declared{HealthyReason: "OK"}
	}
	st.DeclareConditions(all, time.Unix(0, 0))
	// Removed one at a time: the first removed are forgotten first.
	for i := range MaxRemovedConditions + 10 {
		delete(all, fmt.Sprintf("T%03dReady", i))
		st.DeclareConditions(all, time.Unix(int64(i+1), 0))
	}
	if len(st.Custom) != MaxRemovedConditions {
		t.Fatalf("%d removed types kept, want %d", len(st.Custom), MaxRemovedConditions)
	}
	if _, ok := st.Custom["T009Ready"]; ok {
		t.Error("an early removal outlived later ones")
	}
	if _, ok := st.Custom["T073Ready"]; !ok {
		t.Error("the latest removal was forgotten")
	}
}
