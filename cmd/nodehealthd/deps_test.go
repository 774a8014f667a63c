package main

import (
	"os/exec"
	"strings"
	"testing"
)

// Packages the binaries must not link: each costs megabytes of binary and
// resident text on every node (docs/footprint.md). A test, because one
// import anywhere brings them back without any other sign.
var forbiddenDeps = map[string][]string{
	// The whole of core/v1 (its init registers all 240 types), gRPC and
	// the generated CRI API.
	"github.com/nodehealthd/nodehealthd/cmd/nodehealthd": {
		"k8s.io/api/", "k8s.io/client-go/kubernetes", "google.golang.org/grpc", "k8s.io/cri-api/",
	},
	// The command validates and lists what the daemon runs; it needs
	// neither the pipeline nor a cluster client.
	"github.com/nodehealthd/nodehealthd/cmd/nodehealthctl": {
		"github.com/nodehealthd/nodehealthd/internal/daemon", "github.com/nodehealthd/nodehealthd/internal/publish/cluster",
		"github.com/nodehealthd/nodehealthd/internal/publish/metrics", "k8s.io/", "google.golang.org/grpc",
	},
}

func TestForbiddenDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list dependencies with")
	}
	for pkg, forbidden := range forbiddenDeps {
		out, err := exec.Command(goTool, "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("%s links %s", pkg, dep)
				}
			}
		}
	}
}
