// Command nvmlcheck runs nodehealthd's NVML path once on a GPU machine and
// prints what it sees: driver and NVML versions, the GPUs, whether XID
// events can be registered, every counter read with its NVML return code,
// and the findings two polls would raise. It exits 0 when everything could
// be read, 1 when a read failed, and 2 when NVML cannot be used at all
// (e.g. no driver: libnvidia-ml.so.1 is missing).
//
//	go run ./internal/nvidia/cmd/nvmlcheck [-library PATH] [-root /] [-wait 30s] [-imds]
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
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	o := nvidia.CheckOptions{Lib: nvidia.OpenLibrary(*library), Root: *root, Out: os.Stdout, Wait: *wait, Timeout: *timeout}
	if *imds {
		o.InstanceType = nvidia.NewIMDS().InstanceType
	}
	err := nvidia.SelfCheck(ctx, o)
	switch {
	case err == nil:
		fmt.Println("nvmlcheck: all NVML reads worked")
	case errors.Is(err, nvidia.ErrNoLibrary):
		fmt.Fprintln(os.Stderr, "nvmlcheck:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "nvmlcheck:", err)
		os.Exit(1)
	}
}
