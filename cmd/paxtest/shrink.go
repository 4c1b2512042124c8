package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/paxtest/paxtest/harness"
)

func newCmdShrink(stdout, stderr io.Writer) *cobra.Command {
	o := harness.ShrinkOptions{}
	cmd := &cobra.Command{
		Use:   "shrink RUN_DIR",
		Short: "Find a smaller fault schedule that still makes an invalid run fail",
		Long: `Takes an invalid run and searches, by delta debugging over its recorded schedule's steps
and then their timings, for a smaller schedule that still fails when replayed. Every candidate
is replayed as a real run (--tries times; kept only when every replay fails). Only fault steps are removed:
the waits on the cluster that a scenario recorded stay, so replays stay in step with it. The result is verified with
--verify replays and written, with the run's configuration, to --store/shrink-<time>/, which
paxtest run --replay accepts; the schedule is printed.`,
		Example: `  paxtest shrink store/latest
  paxtest run --replay store/shrink-20261125T101500`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Dir = args[0]
			o.Progress = stderr
			return runShrink(cmd.Context(), o, stdout)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Tries, "tries", 4, "replays per candidate; a candidate is kept only when every one fails")
	f.IntVar(&o.Verify, "verify", 10, "replays of the result, to measure how often it fails")
	f.IntVar(&o.MaxTests, "max-tests", 40, "candidates to try at most")
	f.StringVar(&o.Store, "store", "store", "directory for the replays and the result")
	return cmd
}

func runShrink(ctx context.Context, o harness.ShrinkOptions, stdout io.Writer) error {
	ctx, stop := interruptible(ctx)
	defer stop()
	res, err := harness.Shrink(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "recorded schedule of %s: %d steps, %d of them faults (%d steps up to the first anomaly)\n", o.Dir, res.Recorded, res.Faults, res.Truncated)
	fmt.Fprint(stdout, harness.FormatSchedule(res.Before))
	fmt.Fprintf(stdout, "\nshrunk to %d steps, %d of them faults, after %d candidates (%d replays); it failed in %d of %d verifying replays:\n",
		len(res.Steps), res.Kept, res.Tests, res.Replays, res.Failed, res.Verify)
	fmt.Fprint(stdout, harness.FormatSchedule(res.Steps))
	fmt.Fprintf(stdout, "\nwritten to %s (replay: paxtest run --replay %s)\n", res.Dir, res.Dir)
	return nil
}
