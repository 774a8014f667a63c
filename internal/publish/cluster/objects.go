package cluster

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// The core/v1 objects the publisher reads and writes, cut to the fields it
// uses; their JSON is core/v1's, and the decoder ignores the rest.
// Importing k8s.io/api/core/v1 itself would link every one of its 240
// types with their protobuf, deep-copy and string methods, since its
// package initialiser registers them all: a third of the daemon's
// binary and resident text.

// v1Node is a core/v1 Node.
type v1Node struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Status            v1NodeStatus `json:"status,omitempty"`
}

type v1NodeStatus struct {
	Conditions []v1NodeCondition `json:"conditions,omitempty"`
}

// v1NodeCondition is a core/v1 NodeCondition.
type v1NodeCondition struct {
	Type               string      `json:"type"`
	Status             string      `json:"status"`
	LastHeartbeatTime  metav1.Time `json:"lastHeartbeatTime,omitempty"`
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitempty"`
	Reason             string      `json:"reason,omitempty"`
	Message            string      `json:"message,omitempty"`
}

// v1NodeList is a core/v1 NodeList.
type v1NodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []v1Node `json:"items"`
}

// v1Event is a core/v1 Event.
type v1Event struct {
	metav1.TypeMeta     `json:",inline"`
	metav1.ObjectMeta   `json:"metadata"`
	InvolvedObject      v1ObjectReference `json:"involvedObject"`
	Reason              string            `json:"reason,omitempty"`
	Message             string            `json:"message,omitempty"`
	Source              v1EventSource     `json:"source,omitempty"`
	FirstTimestamp      metav1.Time       `json:"firstTimestamp,omitempty"`
	LastTimestamp       metav1.Time       `json:"lastTimestamp,omitempty"`
	Count               int32             `json:"count,omitempty"`
	Type                string            `json:"type,omitempty"`
	ReportingController string            `json:"reportingComponent"`
	ReportingInstance   string            `json:"reportingInstance"`
}

// v1ObjectReference is a core/v1 ObjectReference.
type v1ObjectReference struct {
	Kind       string    `json:"kind,omitempty"`
	Namespace  string    `json:"namespace,omitempty"`
	Name       string    `json:"name,omitempty"`
	UID        types.UID `json:"uid,omitempty"`
	APIVersion string    `json:"apiVersion,omitempty"`
}

// v1EventSource is a core/v1 EventSource.
type v1EventSource struct {
	Component string `json:"component,omitempty"`
	Host      string `json:"host,omitempty"`
}

// eventTypeWarning is core/v1's EventTypeWarning.
const eventTypeWarning = "Warning"

// DeepCopy returns a copy sharing nothing with n (and hides the promoted
// ObjectMeta.DeepCopy, which would copy the metadata only).
func (n *v1Node) DeepCopy() *v1Node {
	c := *n
	n.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	c.Status.Conditions = append([]v1NodeCondition(nil), n.Status.Conditions...)
	return &c
}

// DeepCopyObject implements runtime.Object.
func (n *v1Node) DeepCopyObject() runtime.Object { return n.DeepCopy() }

// DeepCopyObject implements runtime.Object.
func (l *v1NodeList) DeepCopyObject() runtime.Object {
	c := *l
	l.ListMeta.DeepCopyInto(&c.ListMeta)
	c.Items = make([]v1Node, len(l.Items))
	for i := range l.Items {
		c.Items[i] = *l.Items[i].DeepCopy()
	}
	return &c
}

// DeepCopy returns a copy sharing nothing with e (and hides the promoted
// ObjectMeta.DeepCopy).
func (e *v1Event) DeepCopy() *v1Event {
	c := *e
	e.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	return &c
}

// DeepCopyObject implements runtime.Object.
func (e *v1Event) DeepCopyObject() runtime.Object { return e.DeepCopy() }
