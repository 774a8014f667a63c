package cluster

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/kubewatch"
)

// conditionPatch is a strategic merge patch of nodes/<name>/status that
// touches only our condition types. NodeStatus.Conditions merges by type,
// so the kubelet's conditions (and anyone else's) are left alone; a JSON
// merge patch would replace the whole list. A type of ours that is not
// monitored any more gets a delete directive, so that it does not stay on
// the Node with a stale status; owned lists our types (the five and the
// custom types declared now or before, state.OwnedConditions), nil the five.
// Deleting a type the Node does not have is a no-op.
func conditionPatch(want map[string]condition.Condition, owned []string, now time.Time) []byte {
	if owned == nil {
		owned = finding.Conditions
	}
	hb := metav1.NewTime(now)
	items := make([]any, 0, len(owned))
	for _, t := range owned {
		c, ok := want[t]
		if !ok {
			items = append(items, map[string]string{"type": t, "$patch": "delete"})
			continue
		}
		items = append(items, v1NodeCondition{
			Type:               c.Type,
			Status:             c.Status,
			Reason:             c.Reason,
			Message:            c.Message,
			LastHeartbeatTime:  hb,
			LastTransitionTime: metav1.NewTime(c.LastTransitionTime),
		})
	}
	b, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": items}})
	if err != nil {
		// Only strings and times are marshalled.
		panic(err)
	}
	return b
}

// inSync reports whether the Node shows exactly the conditions we wrote:
// each monitored type with our status, reason, message and transition time
// (at the second precision the API keeps), and no other type of ours.
func inSync(node *v1Node, want map[string]condition.Condition, owned []string) bool {
	if owned == nil {
		owned = finding.Conditions
	}
	have := map[string]v1NodeCondition{}
	for _, c := range node.Status.Conditions {
		have[c.Type] = c
	}
	for _, t := range owned {
		w, wanted := want[t]
		h, present := have[t]
		if wanted != present {
			return false
		}
		if !wanted {
			continue
		}
		if h.Status != w.Status || h.Reason != w.Reason || h.Message != w.Message ||
			!h.LastTransitionTime.Time.Equal(w.LastTransitionTime.Truncate(time.Second)) {
			return false
		}
	}
	return true
}

func sameConditions(a, b map[string]condition.Condition) bool {
	if len(a) != len(b) {
		return false
	}
	for t, c := range a {
		d, ok := b[t]
		if !ok || c.Status != d.Status || c.Reason != d.Reason || c.Message != d.Message || !c.LastTransitionTime.Equal(d.LastTransitionTime) {
			return false
		}
	}
	return true
}

// observe applies what the watch saw.
func (w *worker) observe(now time.Time) {
	if w.obs != nil {
		if o, ok := w.obs.take(); ok {
			if o.reachable && (w.failures > 0 || w.eventFailures > 0) {
				// The server is back: retry now rather than at the end
				// of a backoff that grew during the outage.
				w.retryAt, w.eventRetryAt = now, now
			}
			if o.hasNode {
				w.nodeSeen(o.node, now)
			}
		}
	}
	if !w.checkAt.IsZero() && !now.Before(w.checkAt) {
		w.checkAt = time.Time{}
		if w.lastNode != nil && w.written != nil && !w.reassert && !inSync(w.lastNode, w.written, w.owned) {
			w.overwritten(now)
		}
	}
}

func (w *worker) nodeSeen(n *v1Node, now time.Time) {
	if n == nil {
		if !w.absent {
			w.log.Info("Node object is gone; conditions will be written again when it is registered", "node", w.node)
		}
		w.absent, w.lastNode, w.uid = true, nil, ""
		return
	}
	switch {
	case w.absent:
		w.log.Info("Node registered; writing conditions", "node", w.node, "uid", n.UID)
		w.reassert = true
		w.retryAt = now
	case w.uid != "" && n.UID != w.uid:
		w.log.Info("Node re-registered with a new UID; writing conditions again", "node", w.node, "old_uid", w.uid, "uid", n.UID)
		w.reassert = true
		w.retryAt = now
	}
	w.absent, w.lastNode, w.uid = false, n, n.UID
	if w.written != nil && !w.reassert && !inSync(n, w.written, w.owned) && w.checkAt.IsZero() {
		w.checkAt = now.Add(settle)
	}
}

// overwritten handles someone else changing our conditions. Writing them
// back is right (we own these types), but two owners fighting must not
// become a write loop, so repeated overwrites back off.
func (w *worker) overwritten(now time.Time) {
	keep := w.overwrote[:0]
	for _, t := range w.overwrote {
		if now.Sub(t) < 10*time.Minute {
			keep = append(keep, t)
		}
	}
	w.overwrote = append(keep, now)
	n := len(w.overwrote)
	w.reassert = true
	if n > 1 {
		w.retryAt = maxTime(w.retryAt, now.Add(kubewatch.Backoff(n, 5*time.Minute)))
	}
	w.logOnce("overwritten", time.Minute, slog.LevelWarn, "our conditions on the Node were changed by another client; writing them again",
		"node", w.node, "times_in_10m", n, "hint", "another agent (e.g. the EKS node monitoring agent) may own the same condition types")
}

func (w *worker) needConditions(now time.Time) bool {
	if !w.haveWant || w.absent {
		return false
	}
	return w.written == nil || w.reassert || !sameConditions(w.want, w.written) || !now.Before(w.heartbeat)
}

// syncConditions writes our conditions when they changed, when the Node
// lost them, or when the heartbeat is due.
func (w *worker) syncConditions(ctx context.Context, now time.Time) {
	if !w.needConditions(now) || now.Before(w.retryAt) || now.Before(w.lastWrite.Add(w.cfg.Debounce)) {
		return
	}
	if !w.budget.take(now) {
		return
	}
	want := w.want
	changed := w.written == nil || !sameConditions(want, w.written)
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	node, err := w.api.patchNodeStatus(rctx, w.node, conditionPatch(want, w.owned, now))
	cancel()
	w.cfg.Observer.Write(WriteNodeStatus, err)
	done := time.Now()
	if err != nil {
		w.failures++
		w.retryAt = done.Add(w.failed(whatConditions, err, w.failures))
		return
	}
	w.succeeded(done)
	w.failures = 0
	prev := w.written
	w.written, w.lastWrite, w.reassert = want, done, false
	w.heartbeat = done.Add(time.Duration(float64(w.cfg.Heartbeat) * (1 + heartbeatJitter*rand.Float64())))
	if node != nil {
		w.uid = node.UID
		w.absent = false
	}
	if !changed {
		w.log.Debug("conditions heartbeat written", "node", w.node)
		return
	}
	for t, c := range want {
		if p, ok := prev[t]; ok && p == c {
			continue
		}
		w.log.Info("condition written", "node", w.node, "type", t, "status", c.Status, "reason", c.Reason,
			"since", c.LastTransitionTime.Format(time.RFC3339))
	}
	for t := range prev {
		if _, ok := want[t]; !ok {
			w.log.Info("condition removed: no longer monitored", "node", w.node, "type", t)
		}
	}
}
