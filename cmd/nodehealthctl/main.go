// Command nodehealthctl inspects and steers nodehealthd from the node: it
// reads the state file (no running daemon needed), shows per-GPU health
// from the running daemon, tries rules on sample log lines, validates rule
// files and clears findings.
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `Usage: nodehealthctl <command> [flags]

Commands:
  status          conditions, active findings and recent warnings
  gpu             per-GPU health as the running daemon sees it (NVIDIA nodes)
  test            run log lines from stdin through the rules and print findings
  rules list      list the active rules and the reasons probes and NVML report
  rules validate  validate the config and operator rules
  rules import-npd FILE.json...
                  convert node-problem-detector log monitor configs into rules
  clear REASON    clear active findings of REASON (operator recovery)
  collect         write a diagnostics bundle (tar.gz) for a support ticket

Run 'nodehealthctl <command> -h' for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run returns the exit status: 0 done, 1 the command failed, 2 bad usage or
// invalid rules.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "status":
		return cmdStatus(args[1:], stdout, stderr)
	case "gpu":
		return cmdGPU(args[1:], stdout, stderr)
	case "test":
		return cmdTest(args[1:], stdin, stdout, stderr)
	case "rules":
		if len(args) < 2 {
			fmt.Fprint(stderr, "nodehealthctl rules: want list, validate or import-npd\n")
			return 2
		}
		switch args[1] {
		case "list":
			return cmdRulesList(args[2:], stdout, stderr)
		case "validate":
			return cmdRulesValidate(args[2:], stdout, stderr)
		case "import-npd":
			return cmdRulesImportNPD(args[2:], stdout, stderr)
		}
		fmt.Fprintf(stderr, "nodehealthctl rules: unknown subcommand %q (want list, validate or import-npd)\n", args[1])
		return 2
	case "clear":
		return cmdClear(args[1:], stdout, stderr)
	case "collect":
		return cmdCollect(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "nodehealthctl: unknown command %q\n\n%s", args[0], usage)
	return 2
}
