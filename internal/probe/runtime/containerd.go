package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"sort"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// containerdDeprecationsSettings is probes.containerd-deprecations.
type containerdDeprecationsSettings struct {
	// Window: a deprecated feature used less than this long ago fires.
	Window time.Duration `yaml:"window"`
	// Command is the ctr binary (looked up in PATH).
	Command string `yaml:"command"`
	// Address is containerd's socket, taken under the host root.
	Address string `yaml:"address"`
}

func (s containerdDeprecationsSettings) Validate() error {
	if s.Window <= 0 || s.Command == "" || s.Address == "" {
		return fmt.Errorf("window, command and address must be set")
	}
	return nil
}

type containerdDeprecationsProbe struct {
	probe.Base
	containerdDeprecationsSettings
	noCtr unavailable
}

var containerdDeprecations = probe.Kind{Name: "containerd-deprecations", Period: time.Hour}

var deprecatedContainerdConfiguration = containerdDeprecations.Reason(reason.Reason{
	Name: "DeprecatedContainerdConfiguration", Condition: finding.ContainerRuntimeReady, Severity: finding.Warning,
	Description: "containerd reports that a deprecated feature was used within the last hour (probes.containerd-deprecations.window; " +
		"ctr deprecations list): a configuration option, a CRI or plugin API, or a Docker schema 1 image. The key is the " +
		"deprecation ID. A later containerd release removes the feature and breaks whatever still uses it.",
	Action: "Read the message for the feature, then migrate the containerd configuration, or rebuild and push the image " +
		"in a current format, before the node's containerd is upgraded.",
})

func init() {
	probe.Register(containerdDeprecations,
		containerdDeprecationsSettings{Window: time.Hour, Command: "ctr", Address: "/run/containerd/containerd.sock"},
		func(_ *probe.Env, b probe.Base, s containerdDeprecationsSettings) (probe.Probe, error) {
			return &containerdDeprecationsProbe{Base: b, containerdDeprecationsSettings: s}, nil
		})
}

func (p *containerdDeprecationsProbe) Needs() probe.Needs { return probe.Needs{} }

// containerdDeprecation is one entry of `ctr deprecations list --format=json`.
type containerdDeprecation struct {
	ID             string    `json:"id"`
	Message        string    `json:"message"`
	LastOccurrence time.Time `json:"lastOccurrence"`
}

// Check asks containerd which deprecated features it saw in use recently.
// The socket is passed explicitly rather than chrooting (as NMA does), so
// a ctr shipped with nodehealthd works against a host mounted elsewhere.
func (p *containerdDeprecationsProbe) Check(ctx context.Context, env *probe.Env) ([]probe.Result, error) {
	sock := host.Path(env.Root, p.Address)
	if _, err := os.Stat(sock); errors.Is(err, fs.ErrNotExist) {
		// No containerd on this host (or not started yet): nothing of its
		// can be deprecated.
		return nil, nil
	}
	out, err := env.Run(ctx, p.Command, "--address", sock, "deprecations", "list", "--format=json")
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			p.noCtr.log(env, p, "ctr not found; containerd deprecation checks unavailable", "command", p.Command)
			return nil, nil
		}
		return nil, err
	}
	out = bytes.TrimSpace(out)
	if len(out) == 0 || bytes.Equal(out, []byte("null")) {
		return nil, nil
	}
	var deps []containerdDeprecation
	if err := json.Unmarshal(out, &deps); err != nil {
		return nil, fmt.Errorf("ctr deprecations list: %w", err)
	}
	now := env.Now()
	var res []probe.Result
	for _, d := range deps {
		if d.ID == "" || now.Sub(d.LastOccurrence) >= p.Window {
			continue
		}
		res = append(res, deprecatedContainerdConfiguration.Result(d.ID+": "+d.Message, d.ID))
	}
	sort.Slice(res, func(i, j int) bool { return res[i].Key < res[j].Key })
	return res, nil
}
