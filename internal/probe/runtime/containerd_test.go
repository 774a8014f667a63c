package runtime

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// ctrFixture is a host with a containerd socket and a fake ctr whose
// output is *out.
func ctrFixture(t *testing.T, out *[]byte, runErr *error) (*probe.Env, *[][]string) {
	ft := probetest.NewTree(t)
	ft.Write("/run/containerd/containerd.sock", "")
	env := ft.Env()
	env.Now = func() time.Time { return time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC) }
	var calls [][]string
	env.Run = func(ctx context.Context, name string, args ...string) ([]byte, error) {
		calls = append(calls, append([]string{name}, args...))
		return *out, *runErr
	}
	return env, &calls
}

const schema1Message = "io.containerd.deprecation/pull-schema-1-image: Schema 1 images are deprecated since containerd v1.7 and removed in containerd v2.0. Since containerd v1.7.8, schema 1 images are identified by the \"io.containerd.image/converted-docker-schema1\" label."

func TestContainerdDeprecationFires(t *testing.T) {
	out, runErr := []byte(probetest.Testdata(t, "containerd-deprecations/deprecations.json")), error(nil)
	env, calls := ctrFixture(t, &out, &runErr)
	res := probetest.Check(t, probetest.Build(t, env, "containerd-deprecations", ""), env)
	// Only the schema-1 pull (15 min ago) is recent; the mirrors entry is
	// three hours old.
	probetest.WantOne(t, res, finding.ContainerRuntimeReady, "DeprecatedContainerdConfiguration",
		"io.containerd.deprecation/pull-schema-1-image", schema1Message)
	want := []string{"ctr", "--address", filepath.Join(env.Root, "run/containerd/containerd.sock"), "deprecations", "list", "--format=json"}
	if len(*calls) != 1 || !slices.Equal((*calls)[0], want) {
		t.Fatalf("ran %q, want %q", *calls, want)
	}
}

func TestContainerdDeprecationQuiet(t *testing.T) {
	for _, body := range []string{"", "null", "[]\n",
		`[{"id":"io.containerd.deprecation/old","message":"m","lastOccurrence":"2026-11-25T09:59:59Z"}]`} {
		out, runErr := []byte(body), error(nil)
		env, _ := ctrFixture(t, &out, &runErr)
		probetest.WantNone(t, probetest.Check(t, probetest.Build(t, env, "containerd-deprecations", ""), env))
	}
}

func TestContainerdDeprecationWindowConfigurable(t *testing.T) {
	out, runErr := []byte(probetest.Testdata(t, "containerd-deprecations/deprecations.json")), error(nil)
	env, _ := ctrFixture(t, &out, &runErr)
	res := probetest.Check(t, probetest.Build(t, env, "containerd-deprecations", "window: 4h"), env)
	if len(res) != 2 {
		t.Fatalf("window 4h: want both entries, got %+v", res)
	}
}

func TestContainerdDeprecationErrors(t *testing.T) {
	out, runErr := []byte("{not json"), error(nil)
	env, _ := ctrFixture(t, &out, &runErr)
	p := probetest.Build(t, env, "containerd-deprecations", "")
	if _, err := p.Check(t.Context(), env); err == nil {
		t.Fatal("unparsable output: want an error (nothing raised or cleared)")
	}
	out, runErr = nil, errors.New("ctr: exit status 1: connection refused")
	if _, err := p.Check(t.Context(), env); err == nil {
		t.Fatal("failing ctr: want an error")
	}
	// ctr not installed: unavailable, not a failure every hour.
	runErr = fmt.Errorf("ctr: %w", &exec.Error{Name: "ctr", Err: exec.ErrNotFound})
	if res, err := p.Check(t.Context(), env); err != nil || len(res) != 0 {
		t.Fatalf("ctr missing: want (nil, nil), got %+v, %v", res, err)
	}
}

func TestContainerdDeprecationNoContainerd(t *testing.T) {
	env := probetest.NewTree(t).Env() // Run fails the test if called
	probetest.WantNone(t, probetest.Check(t, probetest.Build(t, env, "containerd-deprecations", ""), env))
}

func TestContainerdDeprecationRecovers(t *testing.T) {
	out, runErr := []byte(probetest.Testdata(t, "containerd-deprecations/deprecations.json")), error(nil)
	env, _ := ctrFixture(t, &out, &runErr)
	p := probetest.Build(t, env, "containerd-deprecations", "")
	probetest.RecoverySteps(t, p, env, "DeprecatedContainerdConfiguration", "io.containerd.deprecation/pull-schema-1-image", func() {
		// An hour on, the schema-1 pull has not happened again.
		env.Now = func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) }
	})
}
