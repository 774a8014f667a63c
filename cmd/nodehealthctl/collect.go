package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/diag"
	"github.com/nodehealthd/nodehealthd/internal/host"
)

func cmdCollect(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("nodehealthctl collect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "bundle file to write, - for standard output (default nodehealthd-diag-<node>-<time>.tar.gz in the current directory)")
	root := fs.String("root", "/", "host root: files are read under it and journalctl gets --root (e.g. /.bottlerocket/rootfs)")
	stateDir := fs.String("state-dir", "/var/lib/nodehealthd", "the daemon's state directory, as a host path")
	configDir := fs.String("config-dir", path.Dir(config.DefaultPath), "the daemon's configuration directory, as a host path")
	timeout := fs.Duration("timeout", 5*time.Minute, "bound on the whole collection; what is not reached by then is listed in errors.txt")
	cmdTimeout := fs.Duration("command-timeout", 30*time.Second, "bound on each command")
	since := fs.Duration("since", 24*time.Hour, "how far back journals are read")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: nodehealthctl collect [flags]

Writes a tar.gz diagnostics bundle: the daemon's state and findings, its
configuration and rules, the journals of nodehealthd, kubelet, containerd
and nodeadm, dmesg, network, storage, unit and kernel settings, and GPU
details where present. Failures are listed in errors.txt inside the bundle.
Private keys and credentials are left out or redacted.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "nodehealthctl collect: unexpected argument %q\n", fs.Arg(0))
		return 2
	}

	now := time.Now()
	target := *out
	if target == "" {
		target = diag.BundleName(*root, now) + ".tar.gz"
	}
	var w io.Writer = stdout
	var f *os.File
	if target != "-" {
		var err error
		// The bundle holds logs and configuration: readable by its owner only.
		f, err = os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			fmt.Fprintf(stderr, "nodehealthctl collect: %v\n", err)
			return 1
		}
		w = f
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := diag.Options{
		Root: *root, StateDir: *stateDir, ConfigDir: *configDir,
		Timeout: *timeout, CommandTimeout: *cmdTimeout, Since: *since,
		Now: func() time.Time { return now },
		Extra: []diag.Generated{
			{Path: "nodehealthd/status.txt", Make: func(context.Context) ([]byte, error) {
				return capture(func(o, e io.Writer) int {
					return cmdStatus([]string{"--state-dir", host.Path(*root, *stateDir)}, o, e)
				})
			}},
			{Path: "nodehealthd/rules.txt", Make: func(context.Context) ([]byte, error) {
				cfgPath := host.Path(*root, path.Join(*configDir, "config.yaml"))
				rulesDir := "/etc/nodehealthd/rules.d"
				if cfg, err := config.Load(cfgPath); err == nil && cfg.RulesDir != "" {
					rulesDir = cfg.RulesDir
				}
				return capture(func(o, e io.Writer) int {
					return cmdRulesList([]string{"--config", cfgPath, "--rules", host.Path(*root, rulesDir)}, o, e)
				})
			}},
		},
	}
	man, err := diag.Collect(ctx, w, opts)
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "nodehealthctl collect: %v\n", err)
		if f != nil {
			os.Remove(target)
		}
		return 1
	}
	where := target
	if target == "-" {
		where = "standard output"
	}
	fmt.Fprintf(stderr, "Wrote %s: %d items, %d problems (see errors.txt in the bundle)", where, len(man.Entries), man.Errors)
	if !man.Complete {
		fmt.Fprintf(stderr, "; stopped at the %s time limit", *timeout)
	}
	fmt.Fprintln(stderr)
	return 0
}

// capture runs a nodehealthctl command into a buffer. Its error output
// becomes the error, so that the bundle records why a view is missing.
func capture(cmd func(stdout, stderr io.Writer) int) ([]byte, error) {
	var o, e bytes.Buffer
	if rc := cmd(&o, &e); rc != 0 {
		return o.Bytes(), errors.New(strings.TrimSpace(e.String()))
	}
	return o.Bytes(), nil
}
