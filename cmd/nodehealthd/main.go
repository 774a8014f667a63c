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
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/daemon"
	"github.com/nodehealthd/nodehealthd/internal/logging"
	"github.com/nodehealthd/nodehealthd/internal/publish/console"
	"github.com/nodehealthd/nodehealthd/internal/source/kmsg"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// env is what a subsystem sees when it wires itself in.
type env struct {
	ctx      context.Context
	log      *slog.Logger
	root     string
	stateDir string
	// cfg is the configuration at start (nil fields = defaults); it is
	// loaded again by the daemon on reload.
	cfg  *config.Config
	opts *daemon.Options
}

// A subsystem is an optional part of the daemon (systemd integration,
// cluster publishing, metrics, probes) that registers itself from its own
// file of this package, the way node_exporter collectors do.
type subsystem struct {
	name string
	// flags adds the subsystem's flags.
	flags func(fs *flag.FlagSet)
	// setup adds publishers or detectors to e.opts; an error stops the
	// daemon before it starts.
	setup func(e *env) error
}

var subsystems []subsystem

func register(s subsystem) { subsystems = append(subsystems, s) }

func main() {
	os.Exit(run())
}

func run() int {
	if len(os.Args) > 1 && os.Args[1] == "privileged-helper" {
		return runHelper(os.Args[2:])
	}
	fs := flag.NewFlagSet("nodehealthd", flag.ContinueOnError)
	root := fs.String("root", "/", "host root: every host path is read under it (e.g. /.bottlerocket/rootfs)")
	stateDir := fs.String("state-dir", "/var/lib/nodehealthd", "directory of the state file")
	configPath := fs.String("config", config.DefaultPath, "configuration file (missing = defaults)")
	rulesDir := fs.String("rules-dir", "", "operator rules directory (default: config rulesDir, else /etc/nodehealthd/rules.d)")
	output := fs.String("o", "text", "how findings are printed on stdout: text, json or none")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	showVersion := fs.Bool("version", false, "print the version and exit")
	for _, s := range subsystems {
		if s.flags != nil {
			s.flags(fs)
		}
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: nodehealthd [flags]\n       nodehealthd privileged-helper [--listen PATH]\n\nMonitors this node's kernel, container runtime, storage, networking and accelerators.\n\nFlags:\n")
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

	opts := daemon.Options{
		Root:       *root,
		StateDir:   *stateDir,
		ConfigPath: *configPath,
		RulesDir:   *rulesDir,
		Logger:     log,
	}
	if *root == "/" {
		if dev := kmsg.Inherited(); dev != nil {
			opts.KmsgDevice = dev
			log.Info("reading the kernel log from the device systemd opened", "device", dev.Name())
		}
	}
	switch *output {
	case "text", "json":
		opts.Publishers = append(opts.Publishers, console.New(os.Stdout, *output == "json"))
	case "none":
	default:
		fmt.Fprintf(os.Stderr, "nodehealthd: -o %q: want text, json or none\n", *output)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg, err := config.Load(*configPath)
	if err != nil {
		// The daemon reports it again and runs with defaults; subsystems
		// get defaults too.
		log.Error("config unreadable; using defaults", "err", err)
		cfg = &config.Config{}
	}
	e := &env{ctx: ctx, log: log, root: *root, stateDir: *stateDir, cfg: cfg, opts: &opts}
	for _, s := range subsystems {
		if s.setup == nil {
			continue
		}
		if err := s.setup(e); err != nil {
			log.Error("cannot start", "subsystem", s.name, "err", err)
			return 1
		}
	}
	log.Info("nodehealthd starting", "version", version, "root", *root, "state_dir", *stateDir)
	if err := daemon.Run(ctx, opts); err != nil {
		log.Error("nodehealthd cannot run", "err", err)
		return 1
	}
	log.Info("nodehealthd stopped")
	return 0
}
