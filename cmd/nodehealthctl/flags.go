package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/nodehealthd/nodehealthd/internal/config"
)

// common holds the flags several commands share.
type common struct {
	stateDir   string
	configPath string
	rulesDir   string
	output     string
}

func newFlags(name string, stderr io.Writer, c *common, withRules, withState bool) *flag.FlagSet {
	fs := flag.NewFlagSet("nodehealthctl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if withState {
		fs.StringVar(&c.stateDir, "state-dir", "/var/lib/nodehealthd", "directory of the daemon's state file")
	}
	if withRules {
		fs.StringVar(&c.configPath, "config", config.DefaultPath, "configuration file")
		fs.StringVar(&c.rulesDir, "rules", "", "operator rules directory (default: config rulesDir, else /etc/nodehealthd/rules.d)")
	}
	fs.StringVar(&c.output, "o", "text", "output format: text or json")
	return fs
}

// parse parses args and checks -o; it returns the exit status to use when
// the command must stop (-1 to go on).
func parse(fs *flag.FlagSet, args []string, c *common) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if c.output != "text" && c.output != "json" {
		fmt.Fprintf(fs.Output(), "%s: -o %q: want text or json\n", fs.Name(), c.output)
		return 2
	}
	return -1
}
