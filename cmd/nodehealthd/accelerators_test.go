package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/daemon"
	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/nvidia"
)

type accelOtherDetector struct{}

func (accelOtherDetector) Name() string                                      { return "other" }
func (accelOtherDetector) Run(ctx context.Context, _ detector.Emitter) error { return nil }

// accelRoot is a host root with one PCI function of the given vendor and
// class.
func accelRoot(t *testing.T, vendor, class string) string {
	root := t.TempDir()
	dir := filepath.Join(root, "sys/bus/pci/devices/0000:00:1e.0")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "vendor"), []byte(vendor+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "class"), []byte(class+"\n"), 0o644)
	return root
}

func accelSetup(t *testing.T, root string, on bool) []string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	o := defaultOptions()
	o.root, o.nvml = root, on
	e := newEnv(context.Background(), log, &o, &config.Config{}, io.Discard)
	e.detectors = append(e.detectors, func(daemon.SourceContext) []detector.Detector {
		return []detector.Detector{accelOtherDetector{}}
	})
	e.setupAccelerators()
	opts := &e.opts
	var names []string
	for _, d := range opts.NewDetectors(daemon.SourceContext{Root: root, Config: &config.Config{}, Logger: log}) {
		names = append(names, d.Name())
	}
	return names
}

func TestAcceleratorsComposeOnNvidiaNodes(t *testing.T) {
	names := accelSetup(t, accelRoot(t, "0x10de", "0x030200"), true)
	if len(names) != 2 || names[0] != "other" || names[1] != "nvml" {
		t.Fatalf("detectors %v, want [other nvml]: the existing ones kept, NVML added", names)
	}
}

func TestAcceleratorsNothingElsewhere(t *testing.T) {
	for name, c := range map[string]struct {
		root string
		on   bool
	}{
		"no GPU":       {accelRoot(t, "0x1d0f", "0x020000"), true},
		"--nvml=false": {accelRoot(t, "0x10de", "0x030200"), false},
	} {
		if names := accelSetup(t, c.root, c.on); len(names) != 1 || names[0] != "other" {
			t.Errorf("%s: detectors %v, want only [other]", name, names)
		}
	}
}

// TestAcceleratorsPublishGPUStatus: on NVIDIA nodes the daemon publishes
// the NVML status board for nodehealthctl gpu, also with --nvml=false so
// that it can say the checks are off; elsewhere it publishes nothing.
func TestAcceleratorsPublishGPUStatus(t *testing.T) {
	for name, c := range map[string]struct {
		on, want bool
		vendor   string
	}{
		"NVIDIA":              {on: true, want: true, vendor: "0x10de"},
		"NVIDIA --nvml=false": {on: false, want: true, vendor: "0x10de"},
		"no GPU":              {on: true, want: false, vendor: "0x1d0f"},
	} {
		o := defaultOptions()
		o.root, o.nvml = accelRoot(t, c.vendor, "0x030200"), c.on
		e := newEnv(context.Background(), slog.New(slog.DiscardHandler), &o, &config.Config{}, io.Discard)
		e.setupAccelerators()
		read, ok := e.opts.LiveSections[nvidia.LiveSection]
		if ok != c.want {
			t.Errorf("%s: gpu section published %v, want %v", name, ok, c.want)
			continue
		}
		if ok {
			if st, isStatus := read().(nvidia.Status); !isStatus || st.Enabled != c.on {
				t.Errorf("%s: section %#v", name, read())
			}
		}
	}
}
