// Command paxtest is the one binary of paxtest: the harness commands and
// `paxtest node`, the target's server process. It stays thin: each command
// parses flags into an options struct and calls a run function in its
// package; exit codes are mapped from typed errors in one place (exit.go).
package main

import (
	"os"

	"github.com/paxtest/paxtest/harness"
)

func main() {
	code := run(os.Args[1:], os.Stdout, os.Stderr)
	harness.ReportPeakRSS()
	os.Exit(code)
}
