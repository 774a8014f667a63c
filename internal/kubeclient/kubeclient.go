// Package kubeclient makes the REST clients the daemon reads and writes
// the node's own Kubernetes objects with (its Node and events, its
// NodeDiagnostic): JSON only, for objects cut down to the fields the daemon
// uses. The typed clientset registers every API group of Kubernetes at
// start-up, and client-go's default serializers bring protobuf and CBOR
// codecs: both would multiply the binary and the daemon's resident memory
// for calls it never makes.
package kubeclient

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// Client is a REST client for one API group version, and the parameter
// codec of its scheme for the requests' options.
type Client struct {
	REST   rest.Interface
	Params runtime.ParameterCodec
}

// New returns a Client for gv on cfg's server that sends and decodes the
// objects scheme knows, and the API's own (Status, watch events, options,
// which scheme must know too: metav1.AddToGroupVersion).
func New(cfg *rest.Config, gv schema.GroupVersion, scheme *runtime.Scheme) (Client, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &gv
	c.APIPath = "/apis"
	if gv.Group == "" {
		c.APIPath = "/api"
	}
	c.ContentType = runtime.ContentTypeJSON
	c.NegotiatedSerializer = JSONSerializer(scheme)
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return Client{}, err
	}
	return Client{REST: rc, Params: runtime.NewParameterCodec(scheme)}, nil
}

// ListNamed lists the objects of resource named name into out. Listing by
// name rather than getting makes a missing object an empty list with a
// resourceVersion to watch from, not an error; and a node's identity may
// list and watch its own objects by name.
func (c Client) ListNamed(ctx context.Context, resource, name string, out runtime.Object) error {
	return c.REST.Get().Resource(resource).
		VersionedParams(&metav1.ListOptions{FieldSelector: nameSelector(name)}, c.Params).
		Do(ctx).Into(out)
}

// WatchNamed watches the object of resource named name from resourceVersion
// rv, for at most timeout.
func (c Client) WatchNamed(ctx context.Context, resource, name, rv string, timeout time.Duration) (watch.Interface, error) {
	secs := int64(timeout / time.Second)
	opts := &metav1.ListOptions{
		FieldSelector:       nameSelector(name),
		ResourceVersion:     rv,
		TimeoutSeconds:      &secs,
		AllowWatchBookmarks: true,
		Watch:               true,
	}
	return c.REST.Get().Resource(resource).VersionedParams(opts, c.Params).Timeout(timeout + 30*time.Second).Watch(ctx)
}

func nameSelector(name string) string {
	return fields.OneTermEqualSelector("metadata.name", name).String()
}

// JSONSerializer is what CodecFactory.WithoutConversion does, for JSON
// alone and the objects scheme knows: objects are sent with their kind and
// version, and decoded as sent.
func JSONSerializer(scheme *runtime.Scheme) runtime.NegotiatedSerializer {
	js := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{})
	return jsonOnly{scheme: scheme, info: runtime.SerializerInfo{
		MediaType: runtime.ContentTypeJSON, MediaTypeType: "application", MediaTypeSubType: "json",
		EncodesAsText: true, Serializer: js,
		StreamSerializer: &runtime.StreamSerializerInfo{EncodesAsText: true, Serializer: js, Framer: kjson.Framer},
	}}
}

type jsonOnly struct {
	scheme *runtime.Scheme
	info   runtime.SerializerInfo
}

func (j jsonOnly) SupportedMediaTypes() []runtime.SerializerInfo {
	return []runtime.SerializerInfo{j.info}
}

func (j jsonOnly) EncoderForVersion(e runtime.Encoder, gv runtime.GroupVersioner) runtime.Encoder {
	return runtime.WithVersionEncoder{Version: gv, Encoder: e, ObjectTyper: j.scheme}
}

func (j jsonOnly) DecoderToVersion(d runtime.Decoder, _ runtime.GroupVersioner) runtime.Decoder {
	return runtime.WithoutVersionDecoder{Decoder: d}
}
