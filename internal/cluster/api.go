package cluster

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// api is the handful of calls the publisher makes, all allowed to a
// system:node:<name> identity for its own Node. Tests substitute it.
type api interface {
	patchNodeStatus(ctx context.Context, node string, patch []byte) (*corev1.Node, error)
	listNode(ctx context.Context, node string) (*corev1.NodeList, error)
	watchNode(ctx context.Context, node, resourceVersion string, timeout time.Duration) (watch.Interface, error)
	createEvent(ctx context.Context, ev *corev1.Event) (*corev1.Event, error)
	patchEvent(ctx context.Context, name string, patch []byte) (*corev1.Event, error)
}

// clientAPI implements api with the typed core/v1 client only: the full
// clientset would more than double the binary for calls we never make.
type clientAPI struct {
	c corev1client.CoreV1Interface
}

func (a clientAPI) patchNodeStatus(ctx context.Context, node string, patch []byte) (*corev1.Node, error) {
	return a.c.Nodes().Patch(ctx, node, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: Component}, "status")
}

// listNode lists by name rather than getting, so that a missing Node is an
// empty list with a resourceVersion to watch from, not an error.
func (a clientAPI) listNode(ctx context.Context, node string) (*corev1.NodeList, error) {
	return a.c.Nodes().List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", node).String()})
}

func (a clientAPI) watchNode(ctx context.Context, node, rv string, timeout time.Duration) (watch.Interface, error) {
	secs := int64(timeout / time.Second)
	return a.c.Nodes().Watch(ctx, metav1.ListOptions{
		FieldSelector:       fields.OneTermEqualSelector("metadata.name", node).String(),
		ResourceVersion:     rv,
		TimeoutSeconds:      &secs,
		AllowWatchBookmarks: true,
	})
}

func (a clientAPI) createEvent(ctx context.Context, ev *corev1.Event) (*corev1.Event, error) {
	return a.c.Events(ev.Namespace).Create(ctx, ev, metav1.CreateOptions{FieldManager: Component})
}

func (a clientAPI) patchEvent(ctx context.Context, name string, patch []byte) (*corev1.Event, error) {
	return a.c.Events(eventNamespace).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: Component})
}
