package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/nvidia"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// cmdGPU prints per-GPU health as the running daemon sees it: the NVML
// readings it publishes on its lock socket, with the findings of its state
// file attributed to each GPU. Only the daemon holds the readings, so
// without one there is nothing to show.
func cmdGPU(args []string, stdout, stderr io.Writer) int {
	var c common
	fl := newFlags("gpu", stderr, &c, false, true)
	if rc := parse(fl, args, &c); rc >= 0 {
		return rc
	}
	live, err := state.QueryLive(c.stateDir, liveTimeout)
	switch {
	case errors.Is(err, state.ErrNotRunning):
		fmt.Fprintf(stderr, "nodehealthctl gpu: no nodehealthd runs on %s (or it runs in another network namespace); "+
			"the per-GPU readings come from the running daemon (nodehealthctl status shows the findings it saved)\n", c.stateDir)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "nodehealthctl gpu: cannot ask the daemon: %v\n", err)
		return 1
	}
	raw, ok := live.Sections[nvidia.LiveSection]
	if !ok {
		fmt.Fprintf(stderr, "nodehealthctl gpu: the daemon (pid %d) reports no GPU status: this is not an NVIDIA node "+
			"(no NVIDIA GPU on its PCI bus), or the daemon is older than this command\n", live.PID)
		return 1
	}
	var st nvidia.Status
	if err := json.Unmarshal(raw, &st); err != nil {
		fmt.Fprintf(stderr, "nodehealthctl gpu: the daemon's GPU status cannot be read: %v\n", err)
		return 1
	}
	now := time.Now()
	var fs []finding.Finding
	if saved, err := state.Read(c.stateDir); err != nil {
		fmt.Fprintf(stderr, "nodehealthctl gpu: cannot read the findings (%v); showing the readings alone\n", err)
	} else {
		fs = gpuFindings(saved, now)
	}
	r := nvidia.NewReport(st, fs)
	if c.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
		return 0
	}
	r.Write(stdout, func(t time.Time) string { return stamp(t, now) })
	return 0
}

// gpuFindings are the active findings and the warnings of the last hour,
// as status shows them.
func gpuFindings(st *state.State, now time.Time) []finding.Finding {
	fs := append([]finding.Finding(nil), st.Active...)
	seen := map[uint64]bool{}
	for _, f := range fs {
		seen[f.ID] = true
	}
	for _, f := range st.Recent {
		if f.Severity == finding.Warning && now.Sub(f.Detected) <= time.Hour && !seen[f.ID] {
			fs = append(fs, f)
		}
	}
	return fs
}
