package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/paxtest/paxtest/harness"
	"github.com/paxtest/paxtest/reports"
)

func newCmdSoak(stdout, stderr io.Writer) *cobra.Command {
	o := harness.SoakOptions{}
	var shard string
	cmd := &cobra.Command{
		Use:   "soak",
		Short: "Run tests back to back for a duration, with JUnit output (nightly CI)",
		Long: `Run tests of --time-limit each until --duration is spent (a run starts only if it still
fits), rotating nemeses and workloads with fresh seeds. Invalid and unknown runs are kept whole;
the bulky files of valid runs are trimmed past --keep-bytes. Writes JUnit XML (one testcase per
run) and a summary page under the store.

Exit codes, as Jepsen's test-all: 255 if any run crashed, else 2 if any is unknown, else 1 if
any is invalid (or a self-check bug was missed), else 0.`,
		Example: `  paxtest soak --duration 2m --time-limit 20s --junit out.xml
  paxtest soak --duration 1h --seed 7000 --shard 2/3 --store store-2 --junit soak-2.xml
  paxtest soak --duration 1h --time-limit 60s --self-check 5 --junit soak.xml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if shard != "" {
				var err error
				if o.Shard, err = harness.ParseShard(shard); err != nil {
					return err
				}
			}
			o.Progress = stderr
			return runSoak(cmd.Context(), o, stdout)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.Duration, "duration", 10*time.Minute, "total time to spend")
	f.DurationVar(&o.TimeLimit, "time-limit", 60*time.Second, "time limit of each run")
	f.StringVar(&o.JUnit, "junit", "", "write JUnit XML here")
	f.StringVar(&o.Store, "store", "store", "directory that keeps the runs")
	f.IntVar(&o.Nodes, "nodes", 5, "nodes per run")
	f.Int64Var(&o.Seed, "seed", 0, "first seed (0: random); run i uses seed+i")
	f.StringSliceVar(&o.Nemeses, "nemeses", nil, "nemeses to rotate (default partition,kill,pause,leader-kill,all)")
	f.StringSliceVar(&o.Workloads, "workloads", nil, "workloads to rotate (default register,append)")
	f.IntVar(&o.SelfCheck, "self-check", 0, "make every n-th run a bug switch that must be caught (0: never)")
	f.Int64Var(&o.KeepBytes, "keep-bytes", 2<<30, "size budget for valid runs; past it their bulky files are removed")
	cmd.AddCommand(newCmdSoakMerge(stdout))
	f.StringVar(&shard, "shard", "", "run part i/n of the rotation (runs i-1, i-1+n, …; seeds disjoint across shards; needs --seed, the same for all)")
	return cmd
}

// soakExit carries soak's test-all exit code.
type soakExit struct{ code int }

func (e soakExit) Error() string { return fmt.Sprintf("soak: exit %d", e.code) }

func runSoak(ctx context.Context, o harness.SoakOptions, stdout io.Writer) error {
	ctx, stop := interruptible(ctx)
	defer stop()
	started := time.Now()
	runs, err := harness.Soak(ctx, o)
	if err != nil {
		return err
	}
	dir, err := harness.WriteSoakSummary(o.Store, started, runs)
	if err != nil {
		return err
	}
	if o.JUnit != "" {
		if err := writeJUnit(o.JUnit, runs); err != nil {
			return err
		}
	}
	passed := 0
	for _, r := range runs {
		if r.Passed() {
			passed++
		}
		fmt.Fprintf(stdout, "%-8s %s seed %d  %s\n", r.Verdict, r.Name, r.Seed, r.Dir)
	}
	fmt.Fprintf(stdout, "soak: %d runs, %d passed; summary %s\n", len(runs), passed, filepath.Join(dir, "index.html"))
	if code := harness.SoakExit(runs); code != 0 {
		return soakExit{code}
	}
	return nil
}

// soakMergeOptions are the flags of `paxtest soak merge`.
type soakMergeOptions struct {
	Into  string
	JUnit string
}

func newCmdSoakMerge(stdout io.Writer) *cobra.Command {
	o := soakMergeOptions{}
	cmd := &cobra.Command{
		Use:   "merge STORE...",
		Short: "Merge the stores of a sharded soak into one store, one summary and one JUnit file",
		Long: `Copy every run that the soak summaries of the given stores list (the shards' --store
directories, e.g. downloaded CI artifacts) into --into, write one summary of them all there,
by seed, and with --junit one JUnit file. The stores given are only read; a run already in --into
is never overwritten. paxtest serve --store INTO then shows every shard's runs.

Exit codes as soak's, over the merged runs.`,
		Example: `  paxtest soak merge --into merged --junit merged/junit.xml shard-1/store shard-2/store shard-3/store`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, stores []string) error {
			return runSoakMerge(o, stores, stdout)
		},
	}
	cmd.Flags().StringVar(&o.Into, "into", "store-merged", "the store to merge into")
	cmd.Flags().StringVar(&o.JUnit, "junit", "", "write JUnit XML of every run here")
	return cmd
}

func runSoakMerge(o soakMergeOptions, stores []string, stdout io.Writer) error {
	dir, runs, err := harness.MergeSoaks(o.Into, stores, time.Now())
	if err != nil {
		return err
	}
	if o.JUnit != "" {
		if err := writeJUnit(o.JUnit, runs); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "soak merge: %d runs of %d stores; summary %s\n", len(runs), len(stores), filepath.Join(dir, "index.html"))
	if code := harness.SoakExit(runs); code != 0 {
		return soakExit{code}
	}
	return nil
}

// writeJUnit writes runs as JUnit XML to path.
func writeJUnit(path string, runs []reports.SoakRun) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write --junit %s: %w", path, err)
	}
	werr := reports.WriteJUnit(f, runs)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("write --junit %s: %w", path, werr)
	}
	return nil
}
