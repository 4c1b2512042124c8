package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/paxtest/paxtest/harness"
	"github.com/spf13/cobra"
)

// newRootCmd builds the command tree.
func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "paxtest",
		Short:         "Jepsen-style fault-injection test harness for a Multi-Paxos key-value cluster",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return harness.UsageError{Err: err} })
	root.AddCommand(newCmdRun(stdout, stderr), newCmdCheck(stdout, stderr), newCmdReport(stdout, stderr), newCmdSoak(stdout, stderr), newCmdServe(stdout, stderr), newCmdBench(stdout, stderr), newCmdShrink(stdout, stderr), newCmdNode(stdout, stderr))
	return root
}

func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	return exitCode(err, stderr)
}

// interruptible returns a context cancelled by SIGINT or SIGTERM, so a
// command stops cleanly (tearing down what it started) on Ctrl-C.
func interruptible(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}
