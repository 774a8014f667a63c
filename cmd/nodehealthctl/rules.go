package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/problems"
	"github.com/nodehealthd/nodehealthd/internal/ruleset"
)

func cmdRulesList(args []string, stdout, stderr io.Writer) int {
	var c common
	fl := newFlags("rules list", stderr, &c, true, false)
	if rc := parse(fl, args, &c); rc >= 0 {
		return rc
	}
	_, set, err := ruleset.Load(c.configPath, c.rulesDir)
	if err != nil {
		fmt.Fprintf(stderr, "nodehealthctl rules list: invalid rules or config:\n%v\n", err)
		return 2
	}
	// The rules, then the reasons probes, NVML and the daemon declare.
	infos := append(set.Rules(), set.Declared()...)
	if c.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(infos)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCONDITION\tREASON\tSEVERITY\tSOURCE\tTHRESHOLD\tORIGIN")
	for _, r := range infos {
		src := r.Source
		if sel := append(append(append([]string{}, r.Identifiers...), r.Units...), r.Paths...); len(sel) > 0 {
			src += ":" + strings.Join(sel, ",")
		}
		th := "-"
		if r.EffectiveThreshold.Count > 1 {
			th = fmt.Sprintf("%d in %s", r.EffectiveThreshold.Count, r.EffectiveThreshold.Window.String())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Condition, r.Reason, r.EffectiveSeverity, src, th, r.Origin)
	}
	tw.Flush()
	return 0
}

func cmdRulesValidate(args []string, stdout, stderr io.Writer) int {
	var c common
	fl := newFlags("rules validate", stderr, &c, true, false)
	if rc := parse(fl, args, &c); rc >= 0 {
		return rc
	}
	// Every problem of every file is listed, one a line, each with its
	// file and line: the config's, the rules', and, even when those
	// failed, the probes sections' (the daemon only logs a bad probes
	// section and runs every probe with its defaults, which is easy to
	// miss).
	_, set, err := ruleset.Load(c.configPath, c.rulesDir)
	if err != nil {
		list := problems.List(err)
		fmt.Fprintf(stderr, "invalid rules or config: %d %s:\n", len(list), plural(len(list), "problem"))
		for _, p := range list {
			fmt.Fprintln(stderr, p)
		}
	}
	// config.Load returns what it could decode even on error.
	cfg, _ := config.Load(c.configPath)
	if _, perr := probe.Build(validationEnv(), cfg.Probes.Sections); perr != nil {
		fmt.Fprintf(stderr, "invalid probes configuration:\n%v\n", perr)
		err = errors.Join(err, perr)
	}
	if err != nil {
		return 2
	}
	fmt.Fprintf(stdout, "OK: %d rules\n", len(set.Rules()))
	return 0
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// validationEnv is a probe environment that only lets factories decode and
// check their sections: no host tags, so no probe skips its checks for
// the host it thinks it is on, and no command runs.
func validationEnv() *probe.Env {
	return &probe.Env{
		Root: "/",
		Log:  slog.New(slog.DiscardHandler),
		Now:  time.Now,
		Tags: map[string]bool{},
		Run: func(_ context.Context, name string, _ ...string) ([]byte, error) {
			return nil, fmt.Errorf("rules validate runs no commands (%s)", name)
		},
	}
}
