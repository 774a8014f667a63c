package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/nodehealthd/nodehealthd/internal/daemon"
)

func cmdRulesList(args []string, stdout, stderr io.Writer) int {
	var c common
	fl := newFlags("rules list", stderr, &c, true, false)
	if rc := parse(fl, args, &c); rc >= 0 {
		return rc
	}
	_, set, err := daemon.LoadRuleSet(c.configPath, c.rulesDir)
	if err != nil {
		fmt.Fprintf(stderr, "nodehealthctl rules list: invalid rules or config:\n%v\n", err)
		return 2
	}
	infos := set.Rules()
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
	_, set, err := daemon.LoadRuleSet(c.configPath, c.rulesDir)
	if err != nil {
		fmt.Fprintf(stderr, "invalid rules or config:\n%v\n", err)
		return 2
	}
	fmt.Fprintf(stdout, "OK: %d rules\n", len(set.Rules()))
	return 0
}
