package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/capture"
	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/diag"
	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/s3upload"
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
	daemonPaths := fs.Bool("daemon-paths", false, "--state-dir and --config-dir are paths as this process sees them, not host paths under --root (how nodehealthd runs collect)")
	since := fs.Duration("since", 24*time.Hour, "how far back journals are read")
	sections := fs.String("sections", "", "collect only these sections, comma-separated: "+strings.Join(diag.Sections, ", ")+" (default all)")
	upload := fs.String("upload", "", "after writing the bundle, upload it to s3://bucket/prefix/ ({node} is the node's name) with the node's AWS credentials (instance profile through IMDSv2)")
	uploadName := fs.String("upload-name", "", "object name under the --upload prefix (default the bundle's file name)")
	uploadTimeout := fs.Duration("upload-timeout", 5*time.Minute, "bound on the upload, its "+strconv.Itoa(s3upload.DefaultAttempts)+" attempts included")
	node := fs.String("node", "", "the node's name for {node} in --upload (default the hostname)")
	result := fs.String("result", "", "json: print the outcome as one JSON line on standard output (what nodehealthd reads)")
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
	var secs []string
	if *sections != "" {
		secs = strings.Split(*sections, ",")
	}
	usage := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "nodehealthctl collect: "+format+"\n", args...)
		return 2
	}
	if err := diag.CheckSections(secs); err != nil {
		return usage("--sections: %v", err)
	}
	if *result != "" && *result != "json" {
		return usage("--result %q: want json", *result)
	}
	if (*upload != "" || *result != "") && *out == "-" {
		return usage("--upload and --result need a bundle file (-o FILE), not standard output")
	}
	var bucket, prefix string
	if *upload != "" {
		var err error
		if bucket, prefix, err = config.ParseS3URL(*upload); err != nil {
			return usage("--upload: %v", err)
		}
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

	daemonPath := func(p string) string {
		if *daemonPaths {
			return p
		}
		return host.Path(*root, p)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := diag.Options{
		Root: *root, StateDir: *stateDir, ConfigDir: *configDir,
		Timeout: *timeout, CommandTimeout: *cmdTimeout, Since: *since, Sections: secs, DaemonPaths: *daemonPaths,
		Now: func() time.Time { return now },
		Extra: []diag.Generated{
			{Path: "nodehealthd/status.txt", Make: func(context.Context) ([]byte, error) {
				return captureOutput(func(o, e io.Writer) int {
					return cmdStatus([]string{"--state-dir", daemonPath(*stateDir)}, o, e)
				})
			}},
			{Path: "nodehealthd/rules.txt", Make: func(context.Context) ([]byte, error) {
				cfgPath := daemonPath(path.Join(*configDir, "config.yaml"))
				rulesDir := "/etc/nodehealthd/rules.d"
				if cfg, err := config.Load(cfgPath); err == nil && cfg.RulesDir != "" {
					rulesDir = cfg.RulesDir
				}
				return captureOutput(func(o, e io.Writer) int {
					return cmdRulesList([]string{"--config", cfgPath, "--rules", daemonPath(rulesDir)}, o, e)
				})
			}},
		},
	}
	man, err := diag.Collect(ctx, w, opts)
	took := time.Since(now)
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
	res := capture.Result{Path: target, Items: len(man.Entries), Errors: man.Errors, Complete: man.Complete, Seconds: took.Seconds()}
	if fi, err := os.Stat(target); err == nil {
		res.Bytes = fi.Size()
	}
	rc := 0
	if *upload != "" {
		name := *uploadName
		if name == "" {
			name = path.Base(target)
		}
		n := *node
		if n == "" {
			n = capture.HostName(*root)
		}
		key := strings.ReplaceAll(prefix, "{node}", n) + name
		u := &capture.UploadResult{URL: "s3://" + bucket + "/" + key}
		start := time.Now()
		u.Attempts, err = s3upload.Put(ctx, target, bucket, key, s3upload.Options{Timeout: *uploadTimeout})
		u.Seconds = time.Since(start).Seconds()
		if err != nil {
			u.Error = err.Error()
			fmt.Fprintf(stderr, "nodehealthctl collect: upload failed, the bundle stays in %s: %v\n", target, err)
			rc = 1
		} else {
			fmt.Fprintf(stderr, "Uploaded to %s\n", u.URL)
		}
		res.Upload = u
	}
	if *result == "json" {
		b, _ := json.Marshal(res)
		fmt.Fprintf(stdout, "%s\n", b)
	}
	return rc
}

// captureOutput runs a nodehealthctl command into a buffer. Its error output
// becomes the error, so that the bundle records why a view is missing.
func captureOutput(cmd func(stdout, stderr io.Writer) int) ([]byte, error) {
	var o, e bytes.Buffer
	if rc := cmd(&o, &e); rc != 0 {
		return o.Bytes(), errors.New(strings.TrimSpace(e.String()))
	}
	return o.Bytes(), nil
}
