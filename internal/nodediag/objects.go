package nodediag

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group of NodeDiagnostic, as on EKS.
var GroupVersion = schema.GroupVersion{Group: "eks.amazonaws.com", Version: "v1alpha1"}

// Resource is the plural the API serves NodeDiagnostics under.
const Resource = "nodediagnostics"

// NodeDiagnostic is eks.amazonaws.com/v1alpha1 NodeDiagnostic
// (shared/detection.md B6), cut to the fields the daemon reads and writes.
// Its name is the node's.
type NodeDiagnostic struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              Spec   `json:"spec,omitempty"`
	Status            Status `json:"status,omitempty"`
}

// Spec is what is asked for.
type Spec struct {
	LogCapture *LogCapture `json:"logCapture,omitempty"`
	// PacketCapture is only noticed, to be refused: its fields are of no
	// interest.
	PacketCapture *struct{} `json:"packetCapture,omitempty"`
}

// LogCapture asks for a bundle of some categories, delivered to
// Destination: a URL (a presigned PUT) or DestinationNode.
type LogCapture struct {
	Destination string   `json:"destination"`
	Categories  []string `json:"categories,omitempty"`
}

// DestinationNode keeps the bundle on the node, for download through the
// kubelet's node proxy.
const DestinationNode = "node"

// Status is what the node reports.
type Status struct {
	// CaptureStatuses is the only part written; a merge patch of it
	// leaves status.conditions alone.
	CaptureStatuses []CaptureStatus `json:"captureStatuses,omitempty"`
}

// Capture types of CaptureStatus.
const (
	TypeLog    = "Log"
	TypePacket = "Packet"
)

// CaptureStatus is one capture's state; Type is TypeLog or TypePacket.
type CaptureStatus struct {
	Type  string       `json:"type"`
	State CaptureState `json:"state"`
}

// CaptureState holds exactly one of Running and Completed.
type CaptureState struct {
	Running   *Running   `json:"running,omitempty"`
	Completed *Completed `json:"completed,omitempty"`
}

// Running is a capture in progress.
type Running struct {
	StartedAt metav1.Time `json:"startedAt"`
	CaptureID string      `json:"captureID,omitempty"`
}

// Reasons of Completed.
const (
	ReasonSuccess           = "Success"
	ReasonSuccessWithErrors = "SuccessWithErrors"
	ReasonFailure           = "Failure"
)

// Completed is a capture's end.
type Completed struct {
	Reason             string      `json:"reason"`
	Message            string      `json:"message,omitempty"`
	StartedAt          metav1.Time `json:"startedAt"`
	FinishedAt         metav1.Time `json:"finishedAt"`
	CaptureID          string      `json:"captureID,omitempty"`
	ObservedGeneration int64       `json:"observedGeneration,omitempty"`
}

// NodeDiagnosticList is a list of NodeDiagnostics.
type NodeDiagnosticList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeDiagnostic `json:"items"`
}

// logStatus returns the Log entry of s, or nil.
func (s *Status) logStatus() *CaptureStatus {
	return s.find(TypeLog)
}

func (s *Status) find(typ string) *CaptureStatus {
	for i := range s.CaptureStatuses {
		if s.CaptureStatuses[i].Type == typ {
			return &s.CaptureStatuses[i]
		}
	}
	return nil
}

// with returns the capture statuses with typ's entry replaced by cs (or
// added): a merge patch replaces the whole list, and another writer's
// entry must survive ours.
func (s *Status) with(cs CaptureStatus) []CaptureStatus {
	out := make([]CaptureStatus, 0, len(s.CaptureStatuses)+1)
	replaced := false
	for _, c := range s.CaptureStatuses {
		if c.Type == cs.Type {
			c, replaced = cs, true
		}
		out = append(out, c)
	}
	if !replaced {
		out = append(out, cs)
	}
	return out
}

// DeepCopy returns a copy sharing nothing with d (and hides the promoted
// ObjectMeta.DeepCopy).
func (d *NodeDiagnostic) DeepCopy() *NodeDiagnostic {
	c := *d
	d.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	if d.Spec.LogCapture != nil {
		lc := *d.Spec.LogCapture
		lc.Categories = append([]string(nil), lc.Categories...)
		c.Spec.LogCapture = &lc
	}
	c.Status.CaptureStatuses = make([]CaptureStatus, len(d.Status.CaptureStatuses))
	for i, cs := range d.Status.CaptureStatuses {
		if cs.State.Running != nil {
			r := *cs.State.Running
			cs.State.Running = &r
		}
		if cs.State.Completed != nil {
			cc := *cs.State.Completed
			cs.State.Completed = &cc
		}
		c.Status.CaptureStatuses[i] = cs
	}
	return &c
}

// DeepCopyObject implements runtime.Object.
func (d *NodeDiagnostic) DeepCopyObject() runtime.Object { return d.DeepCopy() }

// DeepCopyObject implements runtime.Object.
func (l *NodeDiagnosticList) DeepCopyObject() runtime.Object {
	c := *l
	l.ListMeta.DeepCopyInto(&c.ListMeta)
	c.Items = make([]NodeDiagnostic, len(l.Items))
	for i := range l.Items {
		c.Items[i] = *l.Items[i].DeepCopy()
	}
	return &c
}
