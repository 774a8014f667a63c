package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

func cmdClear(args []string, stdout, stderr io.Writer) int {
	var c common
	fl := newFlags("clear", stderr, &c, false, true)
	key := fl.String("key", "", "clear only the finding with this key (e.g. a device)")
	cond := fl.String("condition", "", "clear only findings of this condition type")
	wait := fl.Duration("wait", 5*time.Second, "how long to wait for a running daemon to apply the clear")
	// Accept the reason before or after the flags.
	var reason string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		reason, args = args[0], args[1:]
	}
	if rc := parse(fl, args, &c); rc >= 0 {
		return rc
	}
	if reason == "" && fl.NArg() == 1 {
		reason = fl.Arg(0)
	} else if fl.NArg() > 0 || reason == "" {
		fmt.Fprintln(stderr, "usage: nodehealthctl clear REASON [--key KEY] [--condition TYPE]")
		return 2
	}
	clr := finding.Clear{Reason: reason, Condition: *cond, Key: *key, AllKeys: *key == "", By: "operator"}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	store, st, err := state.TryLock(c.stateDir, log)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(stderr, "nodehealthctl clear: no state in %s\n", c.stateDir)
		return 1
	case errors.Is(err, state.ErrLocked):
		// The daemon runs: hand it the request and wait for it. It removes
		// the file once a state that includes the clear is on disk.
		path, err := state.SubmitRequest(c.stateDir, state.Request{Clear: &clr}, time.Now())
		if err != nil {
			fmt.Fprintf(stderr, "nodehealthctl clear: %v\n", err)
			return 1
		}
		deadline := time.Now().Add(*wait)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintf(stdout, "cleared %s (applied by the running daemon)\n", reason)
				return 0
			}
			time.Sleep(100 * time.Millisecond)
		}
		if live, err := state.QueryLive(c.stateDir, liveTimeout); err == nil && live.Unsaved != nil {
			fmt.Fprintf(stderr, "nodehealthctl clear: the daemon cannot write its state (%s) since %s, so it has not confirmed the clear within %s; "+
				"it stays queued in %s until a write that includes it succeeds\n", live.Unsaved.Err, stamp(live.Unsaved.Since, time.Now()), *wait, path)
			return 1
		}
		fmt.Fprintf(stderr, "nodehealthctl clear: the daemon has not applied the request within %s; it stays queued in %s\n", *wait, path)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "nodehealthctl clear: %v\n", err)
		return 1
	}
	defer store.Close()
	var ch state.Changes
	n := st.Clear(clr, time.Now(), &ch)
	if n == 0 {
		fmt.Fprintf(stdout, "no active finding with reason %s\n", reason)
		return 0
	}
	st.RefreshConditions(time.Now())
	if err := store.Save(st, time.Now()); err != nil {
		fmt.Fprintf(stderr, "nodehealthctl clear: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "cleared %d finding(s) with reason %s\n", n, reason)
	return 0
}
