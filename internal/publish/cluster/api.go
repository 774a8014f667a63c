package cluster

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
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
// watch events, options), and coreSerializer speaks JSON only. The typed
// clientset registers every API group of Kubernetes at start-up, and
// client-go's default serializers bring protobuf and CBOR codecs: both
// would multiply the binary and the daemon's resident memory for calls we
// never make.
var (
	coreScheme = func() *runtime.Scheme {
		s := runtime.NewScheme()
		// By name: the kind would otherwise be the Go type's.
		s.AddKnownTypeWithName(coreV1.WithKind("Node"), &v1Node{})
		s.AddKnownTypeWithName(coreV1.WithKind("NodeList"), &v1NodeList{})
		s.AddKnownTypeWithName(coreV1.WithKind("Event"), &v1Event{})
		metav1.AddToGroupVersion(s, coreV1)
		return s
	}()
	coreParams                                  = runtime.NewParameterCodec(coreScheme)
	coreSerializer runtime.NegotiatedSerializer = jsonOnly{func() runtime.SerializerInfo {
		js := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, coreScheme, coreScheme, kjson.SerializerOptions{})
		return runtime.SerializerInfo{
			MediaType: runtime.ContentTypeJSON, MediaTypeType: "application", MediaTypeSubType: "json",
			EncodesAsText: true, Serializer: js,
			StreamSerializer: &runtime.StreamSerializerInfo{EncodesAsText: true, Serializer: js, Framer: kjson.Framer},
		}
	}()}
)

// jsonOnly is what CodecFactory.WithoutConversion does, for JSON alone:
// objects are sent with their kind and version, and decoded as sent.
type jsonOnly struct{ info runtime.SerializerInfo }

func (j jsonOnly) SupportedMediaTypes() []runtime.SerializerInfo {
	return []runtime.SerializerInfo{j.info}
}

func (j jsonOnly) EncoderForVersion(e runtime.Encoder, gv runtime.GroupVersioner) runtime.Encoder {
	return runtime.WithVersionEncoder{Version: gv, Encoder: e, ObjectTyper: coreScheme}
}

func (j jsonOnly) DecoderToVersion(d runtime.Decoder, _ runtime.GroupVersioner) runtime.Decoder {
	return runtime.WithoutVersionDecoder{Decoder: d}
}

// restAPI implements api on a REST client for core/v1.
type restAPI struct {
	c rest.Interface
}

func newRESTAPI(cfg *rest.Config) (restAPI, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &coreV1
	c.APIPath = "/api"
	c.ContentType = runtime.ContentTypeJSON
	c.NegotiatedSerializer = coreSerializer
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return restAPI{}, err
	}
	return restAPI{c: rc}, nil
}

func (a restAPI) patchNodeStatus(ctx context.Context, node string, patch []byte) (*v1Node, error) {
	out := &v1Node{}
	err := a.c.Patch(types.StrategicMergePatchType).Resource("nodes").Name(node).SubResource("status").
		VersionedParams(&metav1.PatchOptions{FieldManager: Component}, coreParams).
		Body(patch).Do(ctx).Into(out)
	return out, err
}

// listNode lists by name rather than getting, so that a missing Node is an
// empty list with a resourceVersion to watch from, not an error.
func (a restAPI) listNode(ctx context.Context, node string) (*v1NodeList, error) {
	out := &v1NodeList{}
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

func (a restAPI) createEvent(ctx context.Context, ev *v1Event) (*v1Event, error) {
	out := &v1Event{}
	err := a.c.Post().Namespace(ev.Namespace).Resource("events").
		VersionedParams(&metav1.CreateOptions{FieldManager: Component}, coreParams).
		Body(ev).Do(ctx).Into(out)
	return out, err
}

func (a restAPI) patchEvent(ctx context.Context, name string, patch []byte) (*v1Event, error) {
	out := &v1Event{}
	err := a.c.Patch(types.StrategicMergePatchType).Namespace(eventNamespace).Resource("events").Name(name).
		VersionedParams(&metav1.PatchOptions{FieldManager: Component}, coreParams).
		Body(patch).Do(ctx).Into(out)
	return out, err
}
