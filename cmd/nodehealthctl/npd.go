package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nodehealthd/nodehealthd/internal/npdimport"
	"github.com/nodehealthd/nodehealthd/internal/problems"
	"github.com/nodehealthd/nodehealthd/internal/rules"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// cmdRulesImportNPD converts NPD system-log-monitor configs into a rules
// file on stdout. Exit status: 0 all converted (notes on stderr say what
// differs), 1 some rules or constructs were left out (listed on stderr;
// the rest is still written), 2 bad usage or invalid input (nothing
// written).
func cmdRulesImportNPD(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("nodehealthctl rules import-npd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var condMap stringList
	fs.Var(&condMap, "condition-map", "`NPDName=Condition`: the nodehealthd condition for an NPD condition type (permanent rules) or reason (temporary rules); repeatable")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: nodehealthctl rules import-npd [--condition-map NPDName=Condition]... FILE.json...\n\n"+
			"Convert node-problem-detector system-log-monitor configs into a nodehealthd rules\n"+
			"file on stdout; what cannot be converted, or converts with a difference, is listed\n"+
			"on stderr. Exit status 0: all converted, 1: some left out, 2: bad usage or input.\n\n")
		fs.PrintDefaults()
	}
	// Flags may come before, between or after the files.
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) == 0 {
		fs.Usage()
		return 2
	}
	cm, err := npdimport.ParseConditionMap(condMap)
	if err != nil {
		fmt.Fprintf(stderr, "nodehealthctl rules import-npd: %v\n", err)
		return 2
	}
	var inputs []npdimport.Input
	var errs []error
	for _, f := range files {
		b, err := readConfig(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
			continue
		}
		inputs = append(inputs, npdimport.Input{Name: f, Data: b})
	}
	var res *npdimport.Result
	if len(errs) == 0 {
		res, err = npdimport.Convert(inputs, npdimport.Options{ConditionMap: cm})
		errs = problems.List(err)
	}
	if len(errs) > 0 {
		fmt.Fprintf(stderr, "nodehealthctl rules import-npd: invalid input, nothing converted:\n")
		for _, e := range errs {
			fmt.Fprintln(stderr, e)
		}
		return 2
	}
	out, err := res.YAML()
	if err != nil {
		fmt.Fprintf(stderr, "nodehealthctl rules import-npd: %v\n", err)
		return 2
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "nodehealthctl rules import-npd: write: %v\n", err)
		return 2
	}
	skipped, notes := 0, 0
	for _, is := range res.Issues {
		fmt.Fprintln(stderr, is)
		if is.Skipped {
			skipped++
		} else {
			notes++
		}
	}
	fmt.Fprintf(stderr, "import-npd: %d %s converted from %d %s; %d skipped, %d %s\n",
		len(res.Rules.Rules), plural(len(res.Rules.Rules), "rule"), len(inputs), plural(len(inputs), "file"),
		skipped, notes, plural(notes, "note"))
	if res.Skipped() {
		return 1
	}
	return 0
}

// readConfig reads an NPD config, within the limit of a rules file.
func readConfig(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%v)", fi.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, rules.MaxFileSize+1))
	if err == nil && len(b) > rules.MaxFileSize {
		err = fmt.Errorf("over %d bytes; an NPD config may hold at most 1 MiB", rules.MaxFileSize)
	}
	return b, err
}
