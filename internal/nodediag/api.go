package nodediag

import (
	"context"
	"encoding/json"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	"github.com/nodehealthd/nodehealthd/internal/publish/cluster"
)

// api is the calls the server makes, all on the node's own NodeDiagnostic;
// tests substitute it.
type api interface {
	list(ctx context.Context, node string) (*NodeDiagnosticList, error)
	watch(ctx context.Context, node, resourceVersion string, timeout time.Duration) (watch.Interface, error)
	// patchStatus sets status.captureStatuses with a merge patch.
	patchStatus(ctx context.Context, node string, statuses []CaptureStatus) (*NodeDiagnostic, error)
}

// scheme knows NodeDiagnostic and the API's own objects (Status, watch
// events, options); with cluster.JSONSerializer it keeps the client as
// small as the cluster publisher's.
var (
	scheme = func() *runtime.Scheme {
		s := runtime.NewScheme()
		s.AddKnownTypeWithName(GroupVersion.WithKind("NodeDiagnostic"), &NodeDiagnostic{})
		s.AddKnownTypeWithName(GroupVersion.WithKind("NodeDiagnosticList"), &NodeDiagnosticList{})
		metav1.AddToGroupVersion(s, GroupVersion)
		return s
	}()
	params = runtime.NewParameterCodec(scheme)
)

type restAPI struct{ c rest.Interface }

func newRESTAPI(cfg *rest.Config) (restAPI, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &GroupVersion
	c.APIPath = "/apis"
	c.ContentType = runtime.ContentTypeJSON
	c.NegotiatedSerializer = cluster.JSONSerializer(scheme)
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return restAPI{}, err
	}
	return restAPI{c: rc}, nil
}

func nameSelector(node string) string {
	return fields.OneTermEqualSelector("metadata.name", node).String()
}

// list lists by name rather than getting, so that a missing object is an
// empty list with a resourceVersion to watch from, and a missing CRD is the
// only NotFound.
func (a restAPI) list(ctx context.Context, node string) (*NodeDiagnosticList, error) {
	out := &NodeDiagnosticList{}
	err := a.c.Get().Resource(Resource).
		VersionedParams(&metav1.ListOptions{FieldSelector: nameSelector(node)}, params).
		Do(ctx).Into(out)
	return out, err
}

func (a restAPI) watch(ctx context.Context, node, rv string, timeout time.Duration) (watch.Interface, error) {
	secs := int64(timeout / time.Second)
	opts := &metav1.ListOptions{
		FieldSelector:       nameSelector(node),
		ResourceVersion:     rv,
		TimeoutSeconds:      &secs,
		AllowWatchBookmarks: true,
		Watch:               true,
	}
	return a.c.Get().Resource(Resource).VersionedParams(opts, params).Timeout(timeout + 30*time.Second).Watch(ctx)
}

func (a restAPI) patchStatus(ctx context.Context, node string, statuses []CaptureStatus) (*NodeDiagnostic, error) {
	body, err := json.Marshal(map[string]any{"status": map[string]any{"captureStatuses": statuses}})
	if err != nil {
		return nil, err
	}
	out := &NodeDiagnostic{}
	err = a.c.Patch(types.MergePatchType).Resource(Resource).Name(node).SubResource("status").
		VersionedParams(&metav1.PatchOptions{FieldManager: cluster.Component}, params).
		Body(body).Do(ctx).Into(out)
	return out, err
}
