// Command nvmlcheck runs nodehealthd's NVML checks once on a GPU machine
// and prints what it sees: driver and NVML versions, the GPUs, whether XID
// events can be registered, every NVML read with its return code, then the
// per-GPU report of two polls (as nodehealthctl gpu shows the daemon's)
// with the findings they raised. Exit status: 0 every check passed and
// every read worked; 1 a check raised a finding or a read failed; 2 NVML
// cannot be used at all (e.g. no driver: libnvidia-ml.so.1 is missing).
//
//	go run ./internal/nvidia/cmd/nvmlcheck [-library PATH] [-root /] [-wait 30s] [-imds] [-o text|json]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/nvidia"
)

func main() {
	library := flag.String("library", "", "path of libnvidia-ml.so.1 (default: the dynamic linker's search path)")
	root := flag.String("root", "/", "host root the device files are read under")
	wait := flag.Duration("wait", 0, "listen for XID events this long after the reads")
	imds := flag.Bool("imds", true, "ask the EC2 instance metadata service for the instance type")
	timeout := flag.Duration("timeout", 30*time.Second, "bound on each NVML call")
	output := flag.String("o", "text", "output: text (every read, then the per-GPU report) or json (the report only)")
	flag.Parse()
	if *output != "text" && *output != "json" {
		fmt.Fprintf(os.Stderr, "nvmlcheck: -o %q: want text or json\n", *output)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	o := nvidia.CheckOptions{Lib: nvidia.OpenLibrary(*library), Root: *root, Out: os.Stdout, Wait: *wait, Timeout: *timeout, JSON: *output == "json"}
	if *imds {
		o.InstanceType = nvidia.NewIMDS().InstanceType
	}
	err := nvidia.SelfCheck(ctx, o)
	switch {
	case err == nil:
		fmt.Fprintln(os.Stderr, "nvmlcheck: every check passed and every NVML read worked")
	case errors.Is(err, nvidia.ErrUnhealthy), errors.Is(err, nvidia.ErrUnread):
		fmt.Fprintln(os.Stderr, "nvmlcheck:", err)
		os.Exit(1)
	default:
		// NVML cannot be used: no library, initialisation failed, or hung.
		fmt.Fprintln(os.Stderr, "nvmlcheck:", err)
		os.Exit(2)
	}
}
