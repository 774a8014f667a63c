package cluster

import (
	"bytes"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/nodehealthd/nodehealthd/internal/kubeclient"
)

// The API server's JSON decodes into the cut-down objects under their
// core/v1 kinds (fields the publisher does not read are skipped), and an
// event is encoded as a core/v1 Event.
func TestCoreObjectsRoundTrip(t *testing.T) {
	ser := kubeclient.JSONSerializer(coreScheme)
	info := ser.SupportedMediaTypes()[0]
	dec := ser.DecoderToVersion(info.Serializer, coreV1)
	list := []byte(`{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[{"metadata":{"name":"n1","uid":"u1",
		"labels":{"a":"b"}},"spec":{"podCIDR":"10.0.0.0/24","taints":[{"key":"k","effect":"NoSchedule"}]},
		"status":{"capacity":{"cpu":"2"},"conditions":[{"type":"Ready","status":"True","lastHeartbeatTime":"2026-01-02T03:04:05Z",
		"lastTransitionTime":"2026-01-02T03:00:00Z","reason":"KubeletReady","message":"ok"}]}}]}`)
	obj, gvk, err := dec.Decode(list, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	nl, ok := obj.(*v1NodeList)
	if !ok || gvk.Kind != "NodeList" || nl.ResourceVersion != "7" || len(nl.Items) != 1 {
		t.Fatalf("decoded %T %v: %+v", obj, gvk, obj)
	}
	n := nl.Items[0]
	if n.Name != "n1" || n.UID != "u1" || len(n.Status.Conditions) != 1 || n.Status.Conditions[0].Reason != "KubeletReady" ||
		n.Status.Conditions[0].LastTransitionTime.Unix() != 1767322800 {
		t.Errorf("node %+v", n)
	}
	if obj, gvk, err := dec.Decode([]byte(`{"kind":"Event","apiVersion":"v1","metadata":{"name":"e"},"count":3}`), nil, nil); err != nil ||
		gvk.Kind != "Event" || obj.(*v1Event).Count != 3 {
		t.Errorf("event: %+v %v %v", obj, gvk, err)
	}

	enc := ser.EncoderForVersion(info.Serializer, coreV1)
	b, err := runtime.Encode(enc, &v1Event{Reason: "R", ReportingController: Component})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"kind":"Event"`, `"apiVersion":"v1"`, `"reason":"R"`, `"reportingComponent":"nodehealthd"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("encoded event %s lacks %s", b, want)
		}
	}
}
