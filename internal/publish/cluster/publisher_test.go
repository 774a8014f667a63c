package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// fakeAPI records calls; the API server's semantics are tested end to end
// in e2e/cluster.
type fakeAPI struct {
	mu           sync.Mutex
	patches      [][]byte
	patchTimes   []time.Time
	created      []*v1Event
	eventPatches map[string][]string
	notFound     int // fail this many condition patches with 404
	eventFails   int // fail this many event creations as if unreachable
	// invalid refuses event creations whose message it names as the API
	// server refuses an invalid object.
	invalid string
}

var nodeGR = schema.GroupResource{Resource: "nodes"}

func (f *fakeAPI) patchNodeStatus(_ context.Context, node string, patch []byte) (*v1Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.notFound > 0 {
		f.notFound--
		return nil, apierrors.NewNotFound(nodeGR, node)
	}
	f.patches = append(f.patches, patch)
	f.patchTimes = append(f.patchTimes, time.Now())
	return &v1Node{ObjectMeta: metav1.ObjectMeta{Name: node, UID: "uid-1"}}, nil
}

func (f *fakeAPI) listNode(context.Context, string) (*v1NodeList, error) {
	return &v1NodeList{}, nil
}

func (f *fakeAPI) watchNode(context.Context, string, string, time.Duration) (watch.Interface, error) {
	return watch.NewFake(), nil
}

func (f *fakeAPI) createEvent(_ context.Context, ev *v1Event) (*v1Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.eventFails > 0 {
		f.eventFails--
		return nil, errors.New("connection refused")
	}
	if f.invalid != "" && ev.Message == f.invalid {
		return nil, apierrors.NewInvalid(schema.GroupKind{Kind: "Event"}, ev.Name, nil)
	}
	for _, e := range f.created {
		if e.Name == ev.Name {
			return nil, apierrors.NewAlreadyExists(schema.GroupResource{Resource: "events"}, ev.Name)
		}
	}
	ev = ev.DeepCopy()
	f.created = append(f.created, ev)
	return ev, nil
}

func (f *fakeAPI) patchEvent(_ context.Context, name string, patch []byte) (*v1Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.eventPatches == nil {
		f.eventPatches = map[string][]string{}
	}
	f.eventPatches[name] = append(f.eventPatches[name], string(patch))
	// Enough of a strategic merge patch for the publisher's patches: an
	// empty one returns the event, a count-up sets count.
	for _, e := range f.created {
		if e.Name == name {
			var p struct {
				Count *int32 `json:"count"`
			}
			if err := json.Unmarshal(patch, &p); err != nil {
				return nil, err
			}
			if p.Count != nil {
				e.Count = *p.Count
			}
			return e.DeepCopy(), nil
		}
	}
	return &v1Event{}, nil
}

func (f *fakeAPI) snapshot() (patches [][]byte, created []*v1Event, evPatches map[string][]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.patches), slices.Clone(f.created), f.eventPatches
}

type fakeFeedback struct {
	mu    sync.Mutex
	acks  []uint64
	links []state.ClusterLink
	// events is the latest memory of sent events.
	events []state.SentEvent
	// remembered is how many events the memory held when each ack
	// arrived.
	remembered []int
}

func (f *fakeFeedback) Ack(ids ...uint64) {
	f.mu.Lock()
	f.acks = append(f.acks, ids...)
	f.remembered = append(f.remembered, len(f.events))
	f.mu.Unlock()
}

func (f *fakeFeedback) SetSentEvents(evs []state.SentEvent) {
	f.mu.Lock()
	f.events = slices.Clone(evs)
	f.mu.Unlock()
}

func (f *fakeFeedback) sent() []state.SentEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

func (f *fakeFeedback) SetClusterLink(l state.ClusterLink) {
	f.mu.Lock()
	f.links = append(f.links, l)
	f.mu.Unlock()
}

func (f *fakeFeedback) last() (state.ClusterLink, []uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.links) == 0 {
		return state.ClusterLink{}, slices.Clone(f.acks)
	}
	return f.links[len(f.links)-1], slices.Clone(f.acks)
}

func start(t *testing.T, cfg Config, f *fakeAPI) (*Publisher, *fakeFeedback) {
	t.Helper()
	cfg.NodeName, cfg.NoWatch = "node-1", true
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.dial = func(_ context.Context, w *worker) bool {
		w.api, w.node = f, w.cfg.NodeName
		return true
	}
	fb := &fakeFeedback{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p.Start(ctx, fb)
	return p, fb
}

func conds(kernel string, since time.Time) map[string]condition.Condition {
	out := map[string]condition.Condition{}
	for _, typ := range []string{finding.KernelReady, finding.StorageReady} {
		r, m := condition.Healthy(typ, condition.NoAccelerator)
		out[typ] = condition.Condition{Type: typ, Status: condition.True, Reason: r, Message: m, LastTransitionTime: since}
	}
	if kernel != "" {
		out[finding.KernelReady] = condition.Condition{Type: finding.KernelReady, Status: condition.False, Reason: kernel, Message: kernel + ": x", LastTransitionTime: since}
	}
	return out
}

// waitUntil polls f. In a synctest bubble the clock moves only while every
// goroutine of the bubble waits, so d is exact there, not a guess at how
// fast the machine is.
func waitUntil(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type patchBody struct {
	Status struct {
		Conditions []map[string]string `json:"conditions"`
	} `json:"status"`
}

func decode(t *testing.T, b []byte) map[string]map[string]string {
	t.Helper()
	var p patchBody
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, c := range p.Status.Conditions {
		out[c["type"]] = c
	}
	return out
}

func TestConditionPatchOnlyOurTypes(t *testing.T) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	got := decode(t, conditionPatch(conds("SoftLockup", since), nil, since.Add(time.Hour)))
	if len(got) != len(finding.Conditions) {
		t.Fatalf("patch has %d entries, want one per condition type of ours: %v", len(got), got)
	}
	k := got[finding.KernelReady]
	if k["status"] != "False" || k["reason"] != "SoftLockup" || k["lastTransitionTime"] != "2026-01-02T03:04:05Z" || k["lastHeartbeatTime"] != "2026-01-02T04:04:05Z" {
		t.Errorf("KernelReady entry: %v", k)
	}
	for _, typ := range []string{finding.ContainerRuntimeReady, finding.NetworkingReady, finding.AcceleratedHardwareReady} {
		if got[typ]["$patch"] != "delete" || len(got[typ]) != 2 {
			t.Errorf("%s is not monitored and must be deleted: %v", typ, got[typ])
		}
	}
	if _, ok := got["Ready"]; ok {
		t.Error("patch touches the kubelet's Ready")
	}
}

func TestInSync(t *testing.T) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	want := conds("", since)
	node := &v1Node{Status: v1NodeStatus{Conditions: []v1NodeCondition{{Type: "Ready", Status: "True"}}}}
	for _, c := range want {
		node.Status.Conditions = append(node.Status.Conditions, v1NodeCondition{Type: c.Type,
			Status: c.Status, Reason: c.Reason, Message: c.Message, LastTransitionTime: metav1.NewTime(since.Truncate(time.Second))})
	}
	if !inSync(node, want, nil) {
		t.Fatal("identical conditions (second precision) not in sync")
	}
	node.Status.Conditions[1].Status = "False"
	if inSync(node, want, nil) {
		t.Error("changed status in sync")
	}
	node.Status.Conditions[1].Status = "True"
	node.Status.Conditions = append(node.Status.Conditions, v1NodeCondition{Type: finding.NetworkingReady, Status: "True"})
	if inSync(node, want, nil) {
		t.Error("an unmonitored type of ours on the Node is in sync")
	}
	node.Status.Conditions = node.Status.Conditions[:2]
	if inSync(node, want, nil) {
		t.Error("a missing type is in sync")
	}
}

// Changes within the debounce coalesce; the last one always goes out.
func TestPublisherDebouncesConditionWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeAPI{}
		p, fb := start(t, Config{Debounce: 300 * time.Millisecond}, f)
		since := time.Now().Add(-time.Minute)
		p.Publish(publish.Update{Conditions: conds("", since), State: &state.State{}})
		waitUntil(t, time.Second, "first write", func() bool { ps, _, _ := f.snapshot(); return len(ps) == 1 })
		for i := range 5 {
			p.Publish(publish.Update{Conditions: conds(fmt.Sprintf("Reason%d", i), since), State: &state.State{}})
			time.Sleep(20 * time.Millisecond)
		}
		waitUntil(t, 2*time.Second, "last change written", func() bool {
			ps, _, _ := f.snapshot()
			return decode(t, ps[len(ps)-1])[finding.KernelReady]["reason"] == "Reason4"
		})
		time.Sleep(400 * time.Millisecond)
		ps, _, _ := f.snapshot()
		// The bubble's clock is exact: one write for the five changes,
		// the debounce after the first.
		if len(ps) != 2 {
			t.Errorf("5 changes within the debounce made %d writes, want 1", len(ps)-1)
		}
		f.mu.Lock()
		gap := f.patchTimes[1].Sub(f.patchTimes[0])
		f.mu.Unlock()
		if gap != 300*time.Millisecond {
			t.Errorf("writes %v apart, debounce is 300ms", gap)
		}
		l, _ := fb.last()
		if !l.Connected || l.Node != "node-1" || l.PendingWrites != 0 || l.LastSuccess.IsZero() {
			t.Errorf("link %+v", l)
		}
	})
}

func TestPublisherHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeAPI{}
		p, _ := start(t, Config{ClusterSettings: config.ClusterSettings{Heartbeat: time.Second}}, f)
		p.Publish(publish.Update{Conditions: conds("", time.Now()), State: &state.State{}})
		waitUntil(t, 3500*time.Millisecond, "two heartbeats", func() bool { ps, _, _ := f.snapshot(); return len(ps) >= 3 })
		f.mu.Lock()
		defer f.mu.Unlock()
		for i := 1; i < len(f.patchTimes); i++ {
			if d := f.patchTimes[i].Sub(f.patchTimes[i-1]); d < time.Second || d >= 1200*time.Millisecond {
				t.Errorf("heartbeat interval %v, want [1s, 1.2s)", d)
			}
		}
	})
}

// A missing Node is retried until it exists; the link says why meanwhile.
func TestPublisherRetriesMissingNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeAPI{notFound: 2}
		p, fb := start(t, Config{}, f)
		p.Publish(publish.Update{Conditions: conds("", time.Now()), State: &state.State{}})
		waitUntil(t, time.Second, "link shows the missing Node", func() bool {
			l, _ := fb.last()
			return !l.Connected && l.LastError == "node node-1 is not registered (yet)"
		})
		waitUntil(t, 5*time.Second, "written once the Node exists", func() bool { ps, _, _ := f.snapshot(); return len(ps) == 1 })
		waitUntil(t, time.Second, "link connected", func() bool { l, _ := fb.last(); return l.Connected && l.LastError == "" })
	})
}

func warning(id uint64, msg string, at time.Time) state.Outbound {
	return state.Outbound{ID: id, Finding: finding.Finding{ID: id, Condition: finding.KernelReady, Reason: "SoftLockup", Severity: finding.Warning, Message: msg, Detected: at}}
}

// Identical warnings become one event with a count; a later repeat counts
// the same event up; every record is acknowledged once delivered.
func TestPublisherEventsFoldAndCountUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeAPI{}
		p, fb := start(t, Config{}, f)
		t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
		st := &state.State{Outbox: []state.Outbound{warning(1, "stuck 22s", t0), warning(2, "stuck 22s", t0.Add(time.Second)), warning(3, "stuck 30s", t0.Add(2*time.Second)), warning(4, "stuck 22s", t0.Add(3*time.Second))}}
		p.Publish(publish.Update{Conditions: conds("", t0), State: st})
		waitUntil(t, 2*time.Second, "two events", func() bool { _, c, _ := f.snapshot(); return len(c) == 2 })
		_, created, _ := f.snapshot()
		e := created[0]
		if e.Message != "stuck 22s" || e.Count != 3 || !e.FirstTimestamp.Time.Equal(t0) || !e.LastTimestamp.Time.Equal(t0.Add(3*time.Second)) {
			t.Errorf("folded event: %q count %d first %v last %v", e.Message, e.Count, e.FirstTimestamp, e.LastTimestamp)
		}
		if e.InvolvedObject.UID != types.UID("uid-1") || e.InvolvedObject.Kind != "Node" || e.Type != "Warning" || e.Reason != "SoftLockup" ||
			e.Source.Component != Component || e.ReportingController != Component || e.Namespace != "default" {
			t.Errorf("event fields: %+v", e)
		}
		waitUntil(t, time.Second, "acks", func() bool { _, a := fb.last(); return len(a) == 4 })
		// The pipeline keeps showing acknowledged records until it applies
		// the acks; they must not be sent again.
		st.Outbox = append(st.Outbox, warning(5, "stuck 22s", t0.Add(10*time.Second)))
		p.Publish(publish.Update{Conditions: conds("", t0), State: st})
		waitUntil(t, 2*time.Second, "count-up patch", func() bool { _, _, ep := f.snapshot(); return len(ep[e.Name]) == 1 })
		_, created, ep := f.snapshot()
		if len(created) != 2 {
			t.Errorf("%d events created, want 2 (the repeat counts the first one up)", len(created))
		}
		var patch map[string]any
		_ = json.Unmarshal([]byte(ep[e.Name][0]), &patch)
		if patch["count"] != float64(4) {
			t.Errorf("count-up patch %s, want count 4", ep[e.Name][0])
		}
		_, acks := fb.last()
		slices.Sort(acks)
		if !slices.Equal(acks, []uint64{1, 2, 3, 4, 5}) {
			t.Errorf("acks %v", acks)
		}
	})
}

// One reason flooding distinct messages: its burst goes out, 20 wait, the
// rest are dropped, acknowledged and counted; another reason is not
// starved.
func TestPublisherEventRateLimitPerReason(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeAPI{}
		p, fb := start(t, Config{ClusterSettings: config.ClusterSettings{EventBurst: 3, EventsPerMinute: 0.001, MaxPendingEventsPerReason: 5}}, f)
		t0 := time.Now()
		st := &state.State{}
		for i := range 10 {
			st.Outbox = append(st.Outbox, warning(uint64(i+1), fmt.Sprintf("stuck %ds", i), t0))
		}
		other := warning(11, "other", t0)
		other.Finding.Reason = "KernelBug"
		st.Outbox = append(st.Outbox, other)
		p.Publish(publish.Update{Conditions: conds("", t0), State: st})
		waitUntil(t, 2*time.Second, "burst sent", func() bool { _, c, _ := f.snapshot(); return len(c) == 4 })
		time.Sleep(200 * time.Millisecond)
		_, created, _ := f.snapshot()
		perReason := map[string]int{}
		for _, e := range created {
			perReason[e.Reason]++
		}
		if perReason["SoftLockup"] != 3 || perReason["KernelBug"] != 1 {
			t.Errorf("events per reason %v, want SoftLockup 3 (its burst) and KernelBug 1", perReason)
		}
		waitUntil(t, time.Second, "link", func() bool { l, _ := fb.last(); return l.EventsDropped == 5 && l.PendingWrites == 2 })
		_, acks := fb.last()
		slices.Sort(acks)
		// Dropped 6..10, delivered 1..3 and 11; 4 and 5 wait for budget.
		if !slices.Equal(acks, []uint64{1, 2, 3, 6, 7, 8, 9, 10, 11}) {
			t.Errorf("acks %v", acks)
		}
	})
}

func TestBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newBucket(2, 60, now)
	if !b.take(now) || !b.take(now) || b.take(now) {
		t.Fatal("burst of 2 not honoured")
	}
	if next := b.next(now); next != now.Add(time.Second) {
		t.Errorf("next token at %v, want 1s later", next.Sub(now))
	}
	if b.take(now.Add(999 * time.Millisecond)) {
		t.Error("token before refill")
	}
	if !b.take(now.Add(1001 * time.Millisecond)) {
		t.Error("no token after refill")
	}
	if !b.ready(now.Add(time.Hour)) || b.tokens > 2 {
		t.Errorf("bucket overfilled: %v", b.tokens)
	}
}

// Failed sends during an outage must not spend the reason's budget, or the
// backlog would wait for minutes once the API server is back.
func TestPublisherOutageKeepsReasonBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeAPI{eventFails: 4}
		p, fb := start(t, Config{ClusterSettings: config.ClusterSettings{EventBurst: 2, EventsPerMinute: 0.001}}, f)
		t0 := time.Now()
		st := &state.State{Outbox: []state.Outbound{warning(1, "a", t0), warning(2, "b", t0)}}
		p.Publish(publish.Update{Conditions: conds("", t0), State: st})
		waitUntil(t, 10*time.Second, "both events after the failures", func() bool { _, c, _ := f.snapshot(); return len(c) == 2 })
		_, acks := fb.last()
		if len(acks) != 2 {
			t.Errorf("acks %v", acks)
		}
	})
}

func TestEventQueueBoundsIdenticalFlood(t *testing.T) {
	q := newEventQueue(5, 1, 20)
	for i := range 2500 {
		if !q.add(warning(uint64(i+1), "same", time.Now())) {
			t.Fatal("identical finding dropped")
		}
	}
	g := q.pending[0]
	if len(q.pending) != 1 || g.count != 2500 || len(g.ids) != state.MaxOutbox || g.ids[0] != 501 {
		t.Errorf("groups %d, count %d, ids %d from %d", len(q.pending), g.count, len(g.ids), g.ids[0])
	}
}

// The events a run sent are kept in the state file (their own section), so
// that after a restart a repeat of the same Warning counts the existing
// event up rather than creating a second one; events older than the API
// server keeps them are not.
func TestPublisherCountsUpAfterRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeAPI{}
		t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
		first, fb := start(t, Config{}, f)
		first.Publish(publish.Update{Conditions: conds("", t0), State: &state.State{Outbox: []state.Outbound{warning(1, "stuck 22s", t0)}}})
		var link state.ClusterLink
		var sent []state.SentEvent
		waitUntil(t, 2*time.Second, "event remembered and acknowledged", func() bool {
			var acks []uint64
			link, acks = fb.last()
			sent = fb.sent()
			return len(sent) == 1 && len(acks) == 1
		})
		_, created, _ := f.snapshot()
		if len(created) != 1 {
			t.Fatalf("%d events created, want 1", len(created))
		}
		name := created[0].Name
		if e := sent[0]; e.Name != name || e.Count != 1 || e.Reason != "SoftLockup" || e.Message != "stuck 22s" || e.NodeUID != "uid-1" {
			t.Fatalf("remembered event %+v, want %s count 1", e, name)
		}

		// The pipeline saves what it is told in order: the acknowledgement
		// must come after the memory that holds the event, or a restart in
		// between would create the event a second time.
		fb.mu.Lock()
		if len(fb.remembered) != 1 || fb.remembered[0] != 1 {
			t.Errorf("acknowledged with %v events remembered, want after the link remembering 1", fb.remembered)
		}
		fb.mu.Unlock()

		// A new run (the first's memory is gone) starts from the saved
		// section.
		stale := state.SentEvent{Condition: finding.KernelReady, Reason: "SoftLockup", Message: "stuck 99s", Name: "node-1.old",
			Count: 5, First: t0.Add(-2 * time.Hour), Written: time.Now().Add(-2 * time.Hour), NodeUID: "uid-1"}
		sent = append(sent, stale)
		second, fb2 := start(t, Config{}, f)
		st := &state.State{Cluster: &link, SentEvents: sent, Outbox: []state.Outbound{warning(2, "stuck 22s", t0.Add(time.Minute)), warning(3, "stuck 99s", t0.Add(time.Minute))}}
		second.Publish(publish.Update{Conditions: conds("", t0), State: st})
		waitUntil(t, 2*time.Second, "both repeats delivered", func() bool { _, a := fb2.last(); return len(a) == 2 })
		_, created, ep := f.snapshot()
		if len(ep[name]) != 1 || !strings.Contains(ep[name][0], `"count":2`) {
			t.Errorf("repeat after restart: patches of %s %v, want one count-up to 2", name, ep[name])
		}
		if len(ep["node-1.old"]) != 0 {
			t.Errorf("an event older than the API server keeps events was counted up: %v", ep["node-1.old"])
		}
		if len(created) != 2 || created[1].Message != "stuck 99s" {
			t.Errorf("created %d events, want the first plus a new one for the stale repeat", len(created))
		}
	})
}

// A crash after the API server created an event but before its
// acknowledgement was saved: the next run sends the same records again.
// The event's name comes from its oldest finding, so the API server says
// it exists; the run counts that event up to the records waiting instead
// of creating a duplicate.
func TestPublisherAdoptsEventSentBeforeCrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeAPI{}
		t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
		first, _ := start(t, Config{}, f)
		outbox := []state.Outbound{warning(7, "stuck 22s", t0), warning(8, "stuck 22s", t0.Add(time.Second))}
		first.Publish(publish.Update{Conditions: conds("", t0), State: &state.State{Outbox: outbox}})
		waitUntil(t, 2*time.Second, "event created", func() bool { _, c, _ := f.snapshot(); return len(c) == 1 })
		_, created, _ := f.snapshot()
		name := created[0].Name
		if !strings.HasSuffix(name, ".7") || created[0].Count != 2 {
			t.Fatalf("event %s count %d: want a name ending in the oldest finding's ID 7, count 2", name, created[0].Count)
		}

		// The acknowledgements and the link never reached the state file; a
		// new repeat came in meanwhile.
		second, fb2 := start(t, Config{}, f)
		outbox = append(outbox, warning(9, "stuck 22s", t0.Add(2*time.Second)))
		second.Publish(publish.Update{Conditions: conds("", t0), State: &state.State{Outbox: outbox}})
		waitUntil(t, 2*time.Second, "records acknowledged", func() bool { _, a := fb2.last(); return len(a) == 3 })
		_, created, _ = f.snapshot()
		if len(created) != 1 {
			t.Fatalf("%d events created, want the one from before the crash only", len(created))
		}
		if created[0].Count != 3 {
			t.Errorf("event count %d, want 3 (the three records, each counted once)", created[0].Count)
		}

		// An event of that name that is not this group's (another message)
		// is left alone: the group gets an event of its own.
		third, fb3 := start(t, Config{}, f)
		third.Publish(publish.Update{Conditions: conds("", t0), State: &state.State{Outbox: []state.Outbound{warning(7, "other text", t0)}}})
		waitUntil(t, 2*time.Second, "record acknowledged", func() bool { _, a := fb3.last(); return len(a) == 1 })
		_, created, _ = f.snapshot()
		if len(created) != 2 || created[1].Message != "other text" || created[1].Name == name || created[0].Count != 3 {
			t.Errorf("foreign event under the same name: %d events, the first's count %d", len(created), created[0].Count)
		}
	})
}

// A missing kubeconfig is looked for 10s, 20s, 40s… apart, up to
// DiscoverInterval, not every 10s for ever.
func TestDiscoverBacksOff(t *testing.T) {
	p, err := New(Config{Root: t.TempDir(), ClusterSettings: config.ClusterSettings{DiscoverInterval: time.Minute}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{p: p, cfg: &p.cfg, log: p.log}
	now := time.Now()
	var gaps []time.Duration
	for range 5 {
		w.connect(context.Background(), now)
		if w.api != nil {
			t.Fatal("connected without a kubeconfig")
		}
		gaps = append(gaps, w.nextDiscover.Sub(now))
		now = w.nextDiscover
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, time.Minute, time.Minute}
	if !slices.Equal(gaps, want) {
		t.Errorf("gaps between looks %v, want %v", gaps, want)
	}
}

// TestConditionPatchCustomTypes: custom types are written like ours, and a
// custom type owned but no longer wanted (deleted from config) is deleted
// from the Node; the Node is out of sync while it is still there.
func TestConditionPatchCustomTypes(t *testing.T) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	want := conds("", since)
	want["FooReady"] = condition.Condition{Type: "FooReady", Status: condition.False, Reason: "FooDown", Message: "foo is down", LastTransitionTime: since}
	owned := append(slices.Clone(finding.Conditions), "FooReady", "GoneReady")
	got := decode(t, conditionPatch(want, owned, since))
	if f := got["FooReady"]; f["status"] != "False" || f["reason"] != "FooDown" || f["message"] != "foo is down" {
		t.Errorf("FooReady entry: %v", f)
	}
	if g := got["GoneReady"]; g["$patch"] != "delete" {
		t.Errorf("GoneReady was deleted from config and must be deleted from the Node: %v", g)
	}
	node := &v1Node{}
	for _, c := range want {
		node.Status.Conditions = append(node.Status.Conditions, v1NodeCondition{Type: c.Type,
			Status: c.Status, Reason: c.Reason, Message: c.Message, LastTransitionTime: metav1.NewTime(c.LastTransitionTime)})
	}
	if !inSync(node, want, owned) {
		t.Fatal("identical conditions not in sync")
	}
	node.Status.Conditions = append(node.Status.Conditions, v1NodeCondition{Type: "GoneReady", Status: "True"})
	if inSync(node, want, owned) {
		t.Error("a removed custom type still on the Node is in sync")
	}
}

// observer records what the publisher reports to the metrics.
type observer struct {
	mu      sync.Mutex
	writes  map[string]int
	errs    map[string]int
	dropped map[string]int
}

func (o *observer) Write(kind string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writes[kind]++
	if err != nil {
		o.errs[kind]++
	}
}

func (o *observer) EventsDropped(why string, n int) {
	o.mu.Lock()
	o.dropped[why] += n
	o.mu.Unlock()
}

func (o *observer) get(m map[string]int, k string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return m[k]
}

// An event the API server refuses for good is dropped, acknowledged and
// counted instead of being retried ahead of every event behind it; every
// write reaches the observer (the daemon's metrics).
func TestPublisherRejectedEventDroppedAndObserved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeAPI{invalid: "bad"}
		obs := &observer{writes: map[string]int{}, errs: map[string]int{}, dropped: map[string]int{}}
		p, fb := start(t, Config{Observer: obs}, f)
		t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
		bad := warning(1, "bad", t0)
		bad.Finding.Count = 3
		st := &state.State{Outbox: []state.Outbound{bad, warning(2, "good", t0.Add(time.Second))}}
		p.Publish(publish.Update{Conditions: conds("", t0), State: st})
		waitUntil(t, 5*time.Second, "the good event after the rejected one", func() bool {
			_, c, _ := f.snapshot()
			return len(c) == 1 && c[0].Message == "good"
		})
		waitUntil(t, time.Second, "both records acknowledged", func() bool { _, a := fb.last(); return len(a) == 2 })
		if n := obs.get(obs.dropped, DropRejected); n != 3 {
			t.Errorf("rejected occurrences reported: %d, want 3", n)
		}
		if obs.get(obs.writes, WriteEvent) != 2 || obs.get(obs.errs, WriteEvent) != 1 {
			t.Errorf("event writes %d (errors %d), want 2 (1)", obs.get(obs.writes, WriteEvent), obs.get(obs.errs, WriteEvent))
		}
		if obs.get(obs.writes, WriteNodeStatus) < 1 || obs.get(obs.errs, WriteNodeStatus) != 0 {
			t.Errorf("node status writes %d (errors %d)", obs.get(obs.writes, WriteNodeStatus), obs.get(obs.errs, WriteNodeStatus))
		}
		if l, _ := fb.last(); l.EventsDropped != 3 {
			t.Errorf("link counts %d dropped, want 3", l.EventsDropped)
		}
	})
}

// config.yaml's cluster section applies to a running publisher: a shorter
// heartbeat is due from the last write, not after the old one.
func TestPublisherReconfigureHeartbeat(t *testing.T) {
	f := &fakeAPI{}
	var cfg Config
	cfg.Heartbeat = time.Hour
	p, _ := start(t, cfg, f)
	since := time.Now().Add(-time.Minute)
	p.Publish(publish.Update{Conditions: conds("", since), State: &state.State{}})
	waitUntil(t, 2*time.Second, "first write", func() bool { ps, _, _ := f.snapshot(); return len(ps) == 1 })
	var next config.Config
	next.Cluster.Heartbeat = time.Second
	p.Reconfigure(&next)
	waitUntil(t, 5*time.Second, "heartbeat at the new interval", func() bool { ps, _, _ := f.snapshot(); return len(ps) >= 2 })
}

// The worker connects before the pipeline's first Publish: it must not
// report a link or an event memory until it has seen the saved ones, or the
// pipeline replaces them (applyFeedback) before handing them over, and the
// events of the previous run are created again instead of counted up.
func TestPublisherSaysNothingBeforeTheSavedState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeAPI{}
		p, fb := start(t, Config{}, f)
		time.Sleep(time.Second)
		synctest.Wait()
		fb.mu.Lock()
		links, evs := len(fb.links), fb.events
		fb.mu.Unlock()
		if links != 0 || evs != nil {
			t.Fatalf("before the first Publish the worker reported %d links and events %v", links, evs)
		}
		t0 := time.Now().Add(-time.Minute)
		saved := state.SentEvent{Condition: finding.KernelReady, Reason: "SoftLockup", Message: "stuck 22s", Name: "node-1.saved",
			Count: 1, First: t0, Written: t0, NodeUID: "uid-1"}
		f.mu.Lock()
		f.created = append(f.created, &v1Event{ObjectMeta: metav1.ObjectMeta{Name: "node-1.saved"}, Count: 1})
		f.mu.Unlock()
		p.Publish(publish.Update{Conditions: conds("", t0), State: &state.State{SentEvents: []state.SentEvent{saved},
			Outbox: []state.Outbound{warning(2, "stuck 22s", time.Now())}}})
		waitUntil(t, 2*time.Second, "the saved event counted up", func() bool { _, _, ep := f.snapshot(); return len(ep["node-1.saved"]) == 1 })
		if got := fb.sent(); len(got) != 1 || got[0].Name != "node-1.saved" || got[0].Count != 2 {
			t.Errorf("memory after the count-up: %+v", got)
		}
	})
}
