package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/capture"
	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/daemon"
	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/publish/consolesummary"
)

// TestDiagnosticsWiring: the subsystem adds the capture and console
// publishers and the detector that reports upload outcomes, keeps the
// detectors set up before it, and survives being set up twice (metrics
// registered once).
func TestDiagnosticsWiring(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for range 2 {
		o := defaultOptions()
		o.configPath, o.stateDir = filepath.Join(t.TempDir(), "config.yaml"), t.TempDir()
		e := newEnv(context.Background(), log, &o, &config.Config{}, io.Discard)
		e.detectors = append(e.detectors, func(daemon.SourceContext) []detector.Detector { return []detector.Detector{accelOtherDetector{}} })
		if err := e.setupDiagnostics(); err != nil {
			t.Fatal(err)
		}
		opts := &e.opts
		var capt, cons bool
		for _, p := range opts.Publishers {
			switch p.(type) {
			case *capture.Capturer:
				capt = true
			case *consolesummary.Writer:
				cons = true
			}
		}
		if !capt || !cons {
			t.Fatalf("publishers %T: want the capturer and the console writer", opts.Publishers)
		}
		dets := opts.NewDetectors(daemon.SourceContext{Config: &config.Config{}, Logger: log})
		if len(dets) != 2 || dets[0].Name() != "other" || dets[1].Name() != capture.Source {
			t.Fatalf("detectors %v, want [other %s]", dets, capture.Source)
		}
	}
}
