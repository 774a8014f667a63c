package nodediag

import (
	"context"
	"encoding/json"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	"github.com/nodehealthd/nodehealthd/internal/kubeclient"
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
// events, options).
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	s.AddKnownTypeWithName(GroupVersion.WithKind("NodeDiagnostic"), &NodeDiagnostic{})
	s.AddKnownTypeWithName(GroupVersion.WithKind("NodeDiagnosticList"), &NodeDiagnosticList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return s
}()

type restAPI struct{ c kubeclient.Client }

func newRESTAPI(cfg *rest.Config) (restAPI, error) {
	c, err := kubeclient.New(cfg, GroupVersion, scheme)
	if err != nil {
		return restAPI{}, err
	}
	return restAPI{c: c}, nil
}

// list lists rather than getting (kubeclient.Client.ListNamed), so that a
// missing CRD is the only NotFound.
func (a restAPI) list(ctx context.Context, node string) (*NodeDiagnosticList, error) {
	out := &NodeDiagnosticList{}
	return out, a.c.ListNamed(ctx, Resource, node, out)
}

func (a restAPI) watch(ctx context.Context, node, rv string, timeout time.Duration) (watch.Interface, error) {
	return a.c.WatchNamed(ctx, Resource, node, rv, timeout)
}

func (a restAPI) patchStatus(ctx context.Context, node string, statuses []CaptureStatus) (*NodeDiagnostic, error) {
	body, err := json.Marshal(map[string]any{"status": map[string]any{"captureStatuses": statuses}})
	if err != nil {
		return nil, err
	}
	out := &NodeDiagnostic{}
	err = a.c.REST.Patch(types.MergePatchType).Resource(Resource).Name(node).SubResource("status").
		VersionedParams(&metav1.PatchOptions{FieldManager: cluster.Component}, a.c.Params).
		Body(body).Do(ctx).Into(out)
	return out, err
}
