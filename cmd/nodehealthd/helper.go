package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/coreos/go-systemd/v22/activation"

	"github.com/nodehealthd/nodehealthd/internal/logging"
	"github.com/nodehealthd/nodehealthd/internal/privhelper"
	"github.com/nodehealthd/nodehealthd/internal/probe"
)

// The privileged helper (internal/privhelper): the daemon's flag that
// points probes at it, and the "privileged-helper" command that runs it.

// privileged is what probes use for privileged reads: the helper when
// --privileged-helper names it, else nil (in-process).
func (e *env) privileged() probe.Privileged {
	if e.o.helperSocket == "" {
		return nil
	}
	return privhelper.NewClient(e.o.helperSocket)
}

// runHelper is "nodehealthd privileged-helper [--listen PATH]". Under
// systemd it serves the socket nodehealthd-helper.socket passes it;
// --listen is for running it by hand.
func runHelper(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("nodehealthd privileged-helper", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "", "listen on this Unix socket instead of the one systemd passes")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	log := logging.New(stderr, 0).With("component", "privileged-helper")
	var l net.Listener
	if *listen != "" {
		_ = os.Remove(*listen)
		ln, err := net.Listen("unix", *listen)
		if err != nil {
			log.Error("cannot listen", "err", err)
			return 1
		}
		if err := os.Chmod(*listen, 0o600); err != nil {
			log.Error("cannot restrict the socket to root", "err", err)
			return 1
		}
		l = ln
	} else {
		ls, err := activation.Listeners()
		if err != nil || len(ls) != 1 || ls[0] == nil {
			fmt.Fprintf(stderr, "nodehealthd privileged-helper: want exactly one socket from systemd (nodehealthd-helper.socket) or --listen; got %d (%v)\n", len(ls), err)
			return 2
		}
		l = ls[0]
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("serving", "socket", l.Addr().String())
	if err := privhelper.NewServer(log).Serve(ctx, l); err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	return 0
}
