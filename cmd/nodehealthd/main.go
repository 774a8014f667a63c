// Command nodehealthd is the node-health daemon: it reads the kernel ring
// buffer, the journal and log files, applies health rules and keeps node
// conditions and findings in a local state file. In local mode (no cluster)
// it prints findings to standard output.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/daemon"
	"github.com/nodehealthd/nodehealthd/internal/logging"
	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/publish/console"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("nodehealthd", flag.ContinueOnError)
	root := fs.String("root", "/", "host root: every host path is read under it (e.g. /.bottlerocket/rootfs)")
	stateDir := fs.String("state-dir", "/var/lib/nodehealthd", "directory of the state file")
	configPath := fs.String("config", config.DefaultPath, "configuration file (missing = defaults)")
	rulesDir := fs.String("rules-dir", "", "operator rules directory (default: config rulesDir, else /etc/nodehealthd/rules.d)")
	output := fs.String("o", "text", "how findings are printed on stdout: text, json or none")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: nodehealthd [flags]\n\nMonitors this node's kernel, container runtime, storage, networking and accelerators.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Println("nodehealthd", version)
		return 0
	}
	level, err := logging.ParseLevel(*logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodehealthd:", err)
		return 2
	}
	log := logging.New(os.Stderr, level)

	var pubs []publish.Publisher
	switch *output {
	case "text", "json":
		pubs = append(pubs, console.New(os.Stdout, *output == "json"))
	case "none":
	default:
		fmt.Fprintf(os.Stderr, "nodehealthd: -o %q: want text, json or none\n", *output)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("nodehealthd starting", "version", version, "root", *root, "state_dir", *stateDir, "mode", "local")
	err = daemon.Run(ctx, daemon.Options{
		Root:       *root,
		StateDir:   *stateDir,
		ConfigPath: *configPath,
		RulesDir:   *rulesDir,
		Logger:     log,
		Publishers: pubs,
	})
	if err != nil {
		log.Error("nodehealthd cannot run", "err", err)
		return 1
	}
	log.Info("nodehealthd stopped")
	return 0
}
