package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/rules"
	"github.com/nodehealthd/nodehealthd/internal/ruleset"
	"github.com/nodehealthd/nodehealthd/internal/source"
	"github.com/nodehealthd/nodehealthd/internal/source/kmsg"
)

// testResult is one JSON line of `nodehealthctl test -o json`.
type testResult struct {
	Line      int    `json:"line"`
	Condition string `json:"condition"`
	Reason    string `json:"reason"`
	Severity  string `json:"severity"`
	Message   string `json:"message"`
	Rule      string `json:"rule"`
	Key       string `json:"key,omitempty"`
}

func cmdTest(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var c common
	fl := newFlags("test", stderr, &c, true, false)
	src := fl.String("source", "", "source the lines come from: kmsg, journal or file (required)")
	ident := fl.String("identifier", "", "journal SYSLOG_IDENTIFIER of the lines")
	unit := fl.String("unit", "", "journal _SYSTEMD_UNIT of the lines")
	path := fl.String("path", "", "file the lines come from (source file)")
	interval := fl.Duration("interval", 0, "time between consecutive lines, for threshold windows (kmsg records with a timestamp use it instead)")
	if rc := parse(fl, args, &c); rc >= 0 {
		return rc
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "nodehealthctl test: unexpected argument %q (lines are read from stdin)\n", fl.Arg(0))
		return 2
	}
	kind := source.Kind(*src)
	switch kind {
	case source.KindKmsg:
	case source.KindJournal:
		if *ident == "" && *unit == "" {
			fmt.Fprintln(stderr, "nodehealthctl test: --source journal needs --identifier or --unit")
			return 2
		}
	case source.KindFile:
		if *path == "" {
			fmt.Fprintln(stderr, "nodehealthctl test: --source file needs --path")
			return 2
		}
	default:
		fmt.Fprintf(stderr, "nodehealthctl test: --source %q: want kmsg, journal or file\n", *src)
		return 2
	}
	_, set, err := ruleset.Load(c.configPath, c.rulesDir)
	if err != nil {
		fmt.Fprintf(stderr, "nodehealthctl test: invalid rules or config:\n%v\n", err)
		return 2
	}
	// The daemon's path for a record: the rules' observations go through
	// the policy stage, which applies config.yaml's overrides.
	engine, stage := rules.NewEngine(set), set.Policy().Stage("", nil)
	base := time.Now()
	enc := json.NewEncoder(stdout)
	var buf []policy.Observation
	lineNo, prevKmsg := 0, false
	test := func(line string) {
		rec := source.Record{Kind: kind, Message: line, Identifier: *ident, Unit: *unit, Path: *path,
			Time: base.Add(time.Duration(lineNo-1) * *interval), Priority: -1, Facility: -1}
		if kind == source.KindKmsg {
			// Dictionary lines (" KEY=value") belong to the record above;
			// rules match message text only, so they are skipped.
			if prevKmsg && strings.HasPrefix(line, " ") && strings.Contains(line, "=") {
				return
			}
			prevKmsg = false
			if e, err := kmsg.ParseEntry([]byte(line)); err == nil {
				rec = e.At(base)
				prevKmsg = true
			}
		}
		if strings.TrimSpace(rec.Message) == "" {
			return
		}
		buf = engine.Process(&rec, buf[:0])
		for _, o := range buf {
			f, ok := stage.Apply(o)
			if !ok {
				continue
			}
			r := testResult{Line: lineNo, Condition: f.Condition, Reason: f.Reason, Severity: string(f.Severity), Message: f.Message, Rule: f.Rule, Key: f.Key}
			if c.output == "json" {
				_ = enc.Encode(r)
			} else {
				fmt.Fprintf(stdout, "line %d: %s %s/%s: %s (rule %s)\n", r.Line, r.Severity, r.Condition, r.Reason, r.Message, r.Rule)
			}
		}
	}

	// Lines are cut as the daemon's tail source cuts them, so that a long
	// line gives the same findings here as in a tailed file.
	in := bufio.NewReaderSize(stdin, 64<<10)
	var line source.Line
	for {
		piece, err := in.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			line.Add(piece)
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			fmt.Fprintf(stderr, "nodehealthctl test: reading stdin: %v\n", err)
			return 1
		}
		if len(piece) > 0 || !line.Empty() {
			lineNo++
			msg, cut := line.End(bytes.TrimSuffix(piece, []byte("\n")))
			if cut {
				fmt.Fprintf(stderr, "nodehealthctl test: line %d is longer than %d bytes; the rules see its first %d bytes, as in the daemon\n", lineNo, source.MaxMessageBytes, source.MaxMessageBytes)
			}
			test(msg)
		}
		if err != nil {
			return 0
		}
	}
}
