package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/probe"
)

// --once: run every host probe once against --root, print what they find
// and exit. It is for checking a node (or a fixture tree) by hand and in CI:
// no jitter, no hysteresis, no state file, no publishing.
var (
	runOnce bool
	onceFS  *flag.FlagSet
	// onceExit and onceOut are os.Exit and os.Stdout; tests replace them.
	onceExit           = os.Exit
	onceOut  io.Writer = os.Stdout
)

func init() {
	s := subsystem{
		name: "once",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&runOnce, "once", false, "run every host probe once against --root, print the findings (-o text or json) and exit")
			onceFS = fs
		},
		setup: setupOnce,
	}
	// First in line: --once must finish before any other subsystem binds a
	// port or contacts the API server.
	subsystems = append([]subsystem{s}, subsystems...)
}

func setupOnce(e *env) error {
	if !runOnce {
		return nil
	}
	format := "text"
	if f := onceFS.Lookup("o"); f != nil {
		format = f.Value.String()
	}
	tags := probe.HostTags(e.root, strings.Split(probeTags, ","))
	onceExit(probeOnce(e.ctx, e.root, e.cfg, tags, e.log, onceOut, format))
	return nil
}

// onceLine is one finding as --once -o json prints it.
type onceLine struct {
	Probe     string `json:"probe"`
	Condition string `json:"condition"`
	Reason    string `json:"reason"`
	Severity  string `json:"severity"`
	Message   string `json:"message"`
	Key       string `json:"key,omitempty"`
}

// probeOnce runs each probe once, concurrently and bounded in time, and
// prints the findings sorted by probe. A probe that fails is logged; the
// exit status is 0 unless the probes cannot be built at all, since finding
// problems is the command working.
func probeOnce(ctx context.Context, root string, cfg *config.Config, tags map[string]bool, log *slog.Logger, w io.Writer, format string) int {
	if cfg == nil {
		cfg = &config.Config{}
	}
	penv := newProbeEnv(root, log, tags)
	probes, err := probe.Build(penv, cfg.Probes)
	if err != nil {
		log.Error("cannot build host probes", "err", err)
		return 1
	}
	sort.Slice(probes, func(i, j int) bool { return probes[i].Name() < probes[j].Name() })
	results := make([][]probe.Result, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := checkBounded(ctx, p, penv)
			if err != nil {
				log.Warn("probe failed", "probe", p.Name(), "err", err)
				return
			}
			results[i] = res
		}()
	}
	wg.Wait()
	enc := json.NewEncoder(w)
	for i, p := range probes {
		for _, r := range results[i] {
			// The daemon drops findings of a reason switched off in
			// config.yaml and applies a severity override; so does --once.
			ov, ok := cfg.Reasons[r.Reason]
			if ok && ov.Enabled != nil && !*ov.Enabled {
				continue
			}
			if ov.Severity != "" {
				r.Severity = finding.Severity(ov.Severity)
			}
			switch format {
			case "json":
				_ = enc.Encode(onceLine{Probe: p.Name(), Condition: r.Condition, Reason: r.Reason, Severity: string(r.Severity), Message: r.Message, Key: r.Key})
			case "none":
			default:
				key := ""
				if r.Key != "" {
					key = " [" + r.Key + "]"
				}
				fmt.Fprintf(w, "%-7s %s/%s%s: %s (probe %s)\n", r.Severity, r.Condition, r.Reason, key, r.Message, p.Name())
			}
		}
	}
	return 0
}

// checkBounded runs one check under the same time bound as the daemon and
// gives up on a probe stuck in a system call rather than hanging.
func checkBounded(ctx context.Context, p probe.Probe, penv *probe.Env) ([]probe.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, min(p.Period(), 30*time.Second))
	defer cancel()
	type out struct {
		res []probe.Result
		err error
	}
	ch := make(chan out, 1)
	go func() {
		res, err := p.Check(ctx, penv)
		ch <- out{res, err}
	}()
	select {
	case o := <-ch:
		return o.res, o.err
	case <-ctx.Done():
		return nil, fmt.Errorf("check did not finish: %w", ctx.Err())
	}
}
