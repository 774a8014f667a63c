package cluster

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	"github.com/nodehealthd/nodehealthd/internal/kubeclient"
)

// api is the handful of calls the publisher makes, all allowed to a
// system:node:<name> identity for its own Node. Tests substitute it.
type api interface {
	patchNodeStatus(ctx context.Context, node string, patch []byte) (*v1Node, error)
	listNode(ctx context.Context, node string) (*v1NodeList, error)
	watchNode(ctx context.Context, node, resourceVersion string, timeout time.Duration) (watch.Interface, error)
	createEvent(ctx context.Context, ev *v1Event) (*v1Event, error)
	patchEvent(ctx context.Context, name string, patch []byte) (*v1Event, error)
}

// coreV1 is the API group of nodes and events.
var coreV1 = schema.GroupVersion{Version: "v1"}

// coreScheme knows the objects of objects.go and the API's own (Status,
// watch events, options).
var coreScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	// By name: the kind would otherwise be the Go type's.
	s.AddKnownTypeWithName(coreV1.WithKind("Node"), &v1Node{})
	s.AddKnownTypeWithName(coreV1.WithKind("NodeList"), &v1NodeList{})
	s.AddKnownTypeWithName(coreV1.WithKind("Event"), &v1Event{})
	metav1.AddToGroupVersion(s, coreV1)
	return s
}()

// restAPI implements api on a REST client for core/v1.
type restAPI struct {
	c kubeclient.Client
}

func newRESTAPI(cfg *rest.Config) (restAPI, error) {
	c, err := kubeclient.New(cfg, coreV1, coreScheme)
	if err != nil {
		return restAPI{}, err
	}
	return restAPI{c: c}, nil
}

func (a restAPI) patchNodeStatus(ctx context.Context, node string, patch []byte) (*v1Node, error) {
	out := &v1Node{}
	err := a.c.REST.Patch(types.StrategicMergePatchType).Resource("nodes").Name(node).SubResource("status").
		VersionedParams(&metav1.PatchOptions{FieldManager: Component}, a.c.Params).
		Body(patch).Do(ctx).Into(out)
	return out, err
}

func (a restAPI) listNode(ctx context.Context, node string) (*v1NodeList, error) {
	out := &v1NodeList{}
	return out, a.c.ListNamed(ctx, "nodes", node, out)
}

func (a restAPI) watchNode(ctx context.Context, node, rv string, timeout time.Duration) (watch.Interface, error) {
	return a.c.WatchNamed(ctx, "nodes", node, rv, timeout)
}

func (a restAPI) createEvent(ctx context.Context, ev *v1Event) (*v1Event, error) {
	out := &v1Event{}
	err := a.c.REST.Post().Namespace(ev.Namespace).Resource("events").
		VersionedParams(&metav1.CreateOptions{FieldManager: Component}, a.c.Params).
		Body(ev).Do(ctx).Into(out)
	return out, err
}

func (a restAPI) patchEvent(ctx context.Context, name string, patch []byte) (*v1Event, error) {
	out := &v1Event{}
	err := a.c.REST.Patch(types.StrategicMergePatchType).Namespace(eventNamespace).Resource("events").Name(name).
		VersionedParams(&metav1.PatchOptions{FieldManager: Component}, a.c.Params).
		Body(patch).Do(ctx).Into(out)
	return out, err
}
