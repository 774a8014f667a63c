package cluster

import (
	"encoding/json"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/finding"
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
