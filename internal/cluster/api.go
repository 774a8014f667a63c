package cluster

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
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

// coreScheme knows core/v1 only. The typed clientset (even its core/v1
// part) registers every API group of Kubernetes at start-up, which doubled
// the binary and the daemon's resident memory for calls we never make.
var (
	coreScheme = func() *runtime.Scheme {
		s := runtime.NewScheme()
		if err := corev1.AddToScheme(s); err != nil {
			panic(err) // static registration; cannot fail
		}
		return s
	}()
	coreParams = runtime.NewParameterCodec(coreScheme)
)

// restAPI implements api on a REST client for core/v1.
type restAPI struct {
	c rest.Interface
}

func newRESTAPI(cfg *rest.Config) (restAPI, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.APIPath = "/api"
	c.NegotiatedSerializer = serializer.NewCodecFactory(coreScheme).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return restAPI{}, err
	}
	return restAPI{c: rc}, nil
}

func (a restAPI) patchNodeStatus(ctx context.Context, node string, patch []byte) (*corev1.Node, error) {
	out := &corev1.Node{}
	err := a.c.Patch(types.StrategicMergePatchType).Resource("nodes").Name(node).SubResource("status").
		VersionedParams(&metav1.PatchOptions{FieldManager: Component}, coreParams).
		Body(patch).Do(ctx).Into(out)
	return out, err
}

// listNode lists by name rather than getting, so that a missing Node is an
// empty list with a resourceVersion to watch from, not an error.
func (a restAPI) listNode(ctx context.Context, node string) (*corev1.NodeList, error) {
	out := &corev1.NodeList{}
	err := a.c.Get().Resource("nodes").
		VersionedParams(&metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", node).String()}, coreParams).
		Do(ctx).Into(out)
	return out, err
}

func (a restAPI) watchNode(ctx context.Context, node, rv string, timeout time.Duration) (watch.Interface, error) {
	secs := int64(timeout / time.Second)
	opts := &metav1.ListOptions{
		FieldSelector:       fields.OneTermEqualSelector("metadata.name", node).String(),
		ResourceVersion:     rv,
		TimeoutSeconds:      &secs,
		AllowWatchBookmarks: true,
		Watch:               true,
	}
	return a.c.Get().Resource("nodes").VersionedParams(opts, coreParams).Timeout(timeout + 30*time.Second).Watch(ctx)
}

func (a restAPI) createEvent(ctx context.Context, ev *corev1.Event) (*corev1.Event, error) {
	out := &corev1.Event{}
	err := a.c.Post().Namespace(ev.Namespace).Resource("events").
		VersionedParams(&metav1.CreateOptions{FieldManager: Component}, coreParams).
		Body(ev).Do(ctx).Into(out)
	return out, err
}

func (a restAPI) patchEvent(ctx context.Context, name string, patch []byte) (*corev1.Event, error) {
	out := &corev1.Event{}
	err := a.c.Patch(types.StrategicMergePatchType).Namespace(eventNamespace).Resource("events").Name(name).
		VersionedParams(&metav1.PatchOptions{FieldManager: Component}, coreParams).
		Body(patch).Do(ctx).Into(out)
	return out, err
}
