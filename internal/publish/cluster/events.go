package cluster

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// Component is the event source and reporting controller.
const Component = "nodehealthd"

// eventNamespace is where events about cluster-scoped objects live.
const eventNamespace = metav1.NamespaceDefault

// eventReuse is how long after its last update an event is counted up
// rather than created anew. The API server deletes events an hour after
// their last write (--event-ttl), so a later patch would only miss.
const eventReuse = 50 * time.Minute

// maxNamePrefix leaves room for ".<16 hex digits>.<20 digits>" in a
// 253-character name.
const maxNamePrefix = 253 - 38

// maxSent bounds the events remembered for counting up.
const maxSent = 512

// maxPersisted bounds the events kept in the state file for counting up
// after a restart: the most recently written ones, which are those a
// repeat is likely to hit. Every state commit writes them.
const maxPersisted = 32

// eventKey is what makes two Warning findings "the same event": client-go's
// correlator uses the same fields (the object and source are always this
// Node and nodehealthd).
type eventKey struct {
	condition, reason, message string
}

func keyOf(f *finding.Finding) eventKey {
	return eventKey{condition: f.Condition, reason: f.Reason, message: f.Message}
}

// group is a run of identical findings waiting to be delivered as one
// API call.
type group struct {
	key         eventKey
	ids         []uint64
	first, last time.Time
	count       int
}

// sentEvent is an event already in the API server.
type sentEvent struct {
	name    string
	count   int32
	first   time.Time
	written time.Time
	// uid is the Node's: after a re-registration events start afresh.
	uid types.UID
}

// eventQueue turns outbox records into Kubernetes events: identical
// findings are folded into one event with a count, each reason has its own
// budget so that one noisy reason cannot starve the others, and what a
// reason cannot send is dropped with a count rather than held forever.
type eventQueue struct {
	pending []*group
	byKey   map[eventKey]*group
	sent    map[eventKey]*sentEvent
	reasons map[string]*bucket

	burst        int
	perMinute    float64
	maxPerReason int

	// dropped counts findings never delivered, per reason, since start.
	dropped map[string]uint64
	// droppedTotal includes earlier runs (from the state file).
	droppedTotal uint64
}

func newEventQueue(burst int, perMinute float64, maxPerReason int) *eventQueue {
	return &eventQueue{
		byKey: map[eventKey]*group{}, sent: map[eventKey]*sentEvent{}, reasons: map[string]*bucket{},
		burst: burst, perMinute: perMinute, maxPerReason: maxPerReason, dropped: map[string]uint64{},
	}
}

// add queues an outbox record. It returns false when the record is dropped
// because its reason already has too many distinct events waiting; the
// caller acknowledges it so that it leaves the state file.
func (q *eventQueue) add(o state.Outbound) bool {
	f := &o.Finding
	k := keyOf(f)
	if g, ok := q.byKey[k]; ok {
		g.ids = append(g.ids, o.ID)
		if len(g.ids) > state.MaxOutbox {
			// The state file keeps only the newest MaxOutbox records, so
			// older IDs need no acknowledgement; a flood of identical
			// findings must not grow memory, only the count.
			g.ids = slices.Delete(g.ids, 0, len(g.ids)-state.MaxOutbox)
		}
		g.count += occurrences(f)
		g.last = later(g.last, later(f.Detected, f.LastSeen))
		if f.Detected.Before(g.first) {
			g.first = f.Detected
		}
		return true
	}
	waiting := 0
	for _, g := range q.pending {
		if g.key.reason == k.reason {
			waiting++
		}
	}
	if waiting >= q.maxPerReason {
		q.drop(k.reason, occurrences(f))
		return false
	}
	g := &group{key: k, ids: []uint64{o.ID}, first: f.Detected, last: later(f.Detected, f.LastSeen), count: occurrences(f)}
	q.pending = append(q.pending, g)
	q.byKey[k] = g
	return true
}

// occurrences is how many times f was seen: a coalesced Warning stands for
// its Count (state.CoalesceWindow), and the event counts them all.
func occurrences(f *finding.Finding) int { return max(1, f.Count) }

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (q *eventQueue) drop(reason string, n int) {
	q.dropped[reason] += uint64(n)
	q.droppedTotal += uint64(n)
}

// expire drops groups whose newest finding is older than maxAge and returns
// their record IDs.
func (q *eventQueue) expire(now time.Time, maxAge time.Duration) (ids []uint64, n int) {
	keep := q.pending[:0]
	for _, g := range q.pending {
		if now.Sub(g.last) > maxAge {
			ids = append(ids, g.ids...)
			n += g.count
			q.drop(g.key.reason, g.count)
			delete(q.byKey, g.key)
			continue
		}
		keep = append(keep, g)
	}
	clear(q.pending[len(keep):])
	q.pending = keep
	return ids, n
}

func (q *eventQueue) reason(r string, now time.Time) *bucket {
	b, ok := q.reasons[r]
	if !ok {
		b = newBucket(q.burst, q.perMinute, now)
		q.reasons[r] = b
	}
	return b
}

// done removes a delivered group.
func (q *eventQueue) done(g *group) {
	delete(q.byKey, g.key)
	for i, p := range q.pending {
		if p == g {
			q.pending = append(q.pending[:i], q.pending[i+1:]...)
			break
		}
	}
}

// pendingRecords counts the records waiting.
func (q *eventQueue) pendingRecords() int {
	n := 0
	for _, g := range q.pending {
		n += len(g.ids)
	}
	return n
}

// remember records a delivered event for counting up later.
func (q *eventQueue) remember(k eventKey, e sentEvent, now time.Time) {
	if len(q.sent) >= maxSent {
		for key, s := range q.sent {
			if now.Sub(s.written) > eventReuse {
				delete(q.sent, key)
			}
		}
		// Still full: forget an arbitrary one; it costs one event object.
		for key := range q.sent {
			if len(q.sent) < maxSent {
				break
			}
			delete(q.sent, key)
		}
	}
	q.sent[k] = &e
}

// reusable returns the event to count up for k, if any.
func (q *eventQueue) reusable(k eventKey, now time.Time) *sentEvent {
	s, ok := q.sent[k]
	if !ok {
		return nil
	}
	if now.Sub(s.written) > eventReuse {
		delete(q.sent, k)
		return nil
	}
	return s
}

// eventName names the event of group g after its oldest finding: its
// detection time (as client-go's names carry a time, so events sort) and
// the lowest finding ID. The outbox keeps both across a crash, so a group
// sent again after a crash that lost the acknowledgement gets the same
// name, and the API server's AlreadyExists tells that it was delivered.
func eventName(node string, g *group) string {
	return fmt.Sprintf("%s.%x.%d", namePrefix(node), g.first.UnixNano(), slices.Min(g.ids))
}

// uniqueEventName is client-go's naming, for when eventName is taken by an
// event that is not this group's.
func uniqueEventName(node string, now time.Time) string {
	return fmt.Sprintf("%s.%x", namePrefix(node), now.UnixNano())
}

// namePrefix cuts a node name (up to 253 characters, as long as an event
// name may be) to leave room for the suffix.
func namePrefix(node string) string {
	if len(node) > maxNamePrefix {
		return node[:maxNamePrefix]
	}
	return node
}

// newEvent builds a core/v1 Event about the Node, the form `kubectl
// describe node` and `kubectl get events` show.
func newEvent(node string, uid types.UID, g *group, name string) *v1Event {
	return &v1Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: eventNamespace,
		},
		InvolvedObject: v1ObjectReference{
			Kind:       "Node",
			APIVersion: "v1",
			Name:       node,
			UID:        uid,
		},
		Reason:              g.key.reason,
		Message:             g.key.message,
		Type:                eventTypeWarning,
		Source:              v1EventSource{Component: Component, Host: node},
		FirstTimestamp:      metav1.NewTime(g.first),
		LastTimestamp:       metav1.NewTime(g.last),
		Count:               int32(g.count),
		ReportingController: Component,
		ReportingInstance:   node,
	}
}

// countPatch counts an existing event up.
func countPatch(count int32, last time.Time) []byte {
	b, _ := json.Marshal(map[string]any{"count": count, "lastTimestamp": metav1.NewTime(last)})
	return b
}

// snapshot returns the events to keep in the state file: the most
// recently written ones still reusable, in a stable order.
func (q *eventQueue) snapshot(now time.Time) []state.SentEvent {
	var out []state.SentEvent
	for k, s := range q.sent {
		if now.Sub(s.written) > eventReuse {
			continue
		}
		out = append(out, state.SentEvent{
			Condition: k.condition, Reason: k.reason, Message: k.message,
			Name: s.name, Count: s.count, First: s.first, Written: s.written, NodeUID: string(s.uid),
		})
	}
	slices.SortFunc(out, func(a, b state.SentEvent) int {
		if c := b.Written.Compare(a.Written); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	if len(out) > maxPersisted {
		out = out[:maxPersisted]
	}
	return out
}

// restore takes back the events a previous run kept in the state file.
func (q *eventQueue) restore(evs []state.SentEvent, now time.Time) {
	for _, e := range evs {
		if now.Sub(e.Written) > eventReuse || e.Name == "" {
			continue
		}
		k := eventKey{condition: e.Condition, reason: e.Reason, message: e.Message}
		if _, ok := q.sent[k]; ok {
			continue // this run already wrote it again
		}
		q.remember(k, sentEvent{name: e.Name, count: e.Count, first: e.First, written: e.Written, uid: types.UID(e.NodeUID)}, now)
	}
}
