package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/paxtest/paxtest/harness"
)

func newCmdBench(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure paxtest: bug-finding power (detect, mutants), the cost of α (window), check speed, systems side by side (compare)",
	}
	cmd.AddCommand(newCmdBenchDetect(stdout, stderr), newCmdBenchWindow(stdout, stderr), newCmdBenchMutants(stdout, stderr), newCmdBenchCheck(stdout, stderr), newCmdBenchPorcupine(stdout),
		newCmdBenchCompare(stdout, stderr), newCmdBenchPower(stdout, stderr))
	return cmd
}

func newCmdBenchPower(stdout, stderr io.Writer) *cobra.Command {
	o := harness.PowerOptions{}
	cmd := &cobra.Command{
		Use:   "power",
		Short: "What runs exercise: availability, recovery and the power floor's verdicts per system, size and nemesis",
		Long: `Runs every --db on every --nodes size under each nemesis that fits the size (or --nemeses),
and the general mix, --runs runs of --time-limit each with the default options. Prints, per cell,
the median share of the load served and of the time a majority of the nodes was up (the power
floor's measure, with its lowest run), the median and longest recovery after a fault, the faults
no acknowledgement followed, and the verdicts; writes power.md and power.json under
--store/bench-power-<time>/. The floor's defaults are chosen from it: every cell should be valid.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Progress = stderr
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			started := time.Now()
			cells, err := harness.BenchPower(ctx, o)
			if err != nil {
				return err
			}
			table := harness.PowerTable(cells, o)
			dir, err := harness.WritePower(o.Store, started, cells, table)
			return printBench(stdout, table, dir, err)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.DBs, "db", []string{"paxtest", "etcd"}, "the systems, comma-separated")
	f.IntSliceVar(&o.Nodes, "nodes", []int{1, 3, 5}, "cluster sizes")
	f.StringSliceVar(&o.Nemeses, "nemeses", nil, "nemeses, each a --nemesis value with + for , (default: every one that fits the size, then all)")
	f.IntVar(&o.Runs, "runs", 3, "runs per cell")
	f.DurationVar(&o.TimeLimit, "time-limit", 30*time.Second, "time limit of each run")
	f.Int64Var(&o.Seed, "seed", 1, "first seed; run i of a cell uses seed+i")
	f.StringVar(&o.Store, "store", "store", "directory that keeps the runs and the table")
	return cmd
}

type detectOptions struct {
	harness.DetectOptions
	Gate bool
}

func newCmdBenchDetect(stdout, stderr io.Writer) *cobra.Command {
	o := detectOptions{}
	cmd := &cobra.Command{
		Use:   "detect",
		Short: "For every bug switch × nemesis (and the correct build), N runs: detected k/N, time to detection, false alarms",
		Long: `Runs the detection matrix: every bug switch with the nemeses expected to expose it (or
--nemeses for all), plus the correct build, --runs runs of --time-limit each with distinct seeds.
Prints a markdown table and writes it with JSON into --store/bench-detect-<time>/.

With --gate it exits 1 if any switch was never caught or the correct build raised an alarm
(the CI gate).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Progress = stderr
			return runDetect(cmd.Context(), o, stdout)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Runs, "runs", 3, "runs per cell")
	f.DurationVar(&o.TimeLimit, "time-limit", 30*time.Second, "time limit of each run")
	f.StringSliceVar(&o.Bugs, "bugs", nil, "switches to test, and none for the correct build (default: all and none)")
	f.StringSliceVar(&o.Nemeses, "nemeses", nil, "nemeses to try for every switch, each a --nemesis value with + for , (membership+partition+kill) (default: each switch's own)")
	f.Int64Var(&o.Seed, "seed", 1, "first seed; run i of a cell uses seed+i")
	f.StringVar(&o.Store, "store", "store", "directory that keeps the runs")
	f.BoolVar(&o.Best, "best", false, "only each switch's best nemesis (the CI gate's slice)")
	f.BoolVar(&o.Gate, "gate", false, "exit 1 if a switch is never caught or the correct build raises an alarm")
	return cmd
}

type gateError struct{ problems []string }

func (e gateError) Error() string {
	return "detect gate failed:\n  " + strings.Join(e.problems, "\n  ")
}

func runDetect(ctx context.Context, o detectOptions, stdout io.Writer) error {
	ctx, stop := interruptible(ctx)
	defer stop()
	started := time.Now()
	cells, err := harness.Detect(ctx, o.DetectOptions)
	if err != nil {
		return err
	}
	table := harness.DetectTable(cells, o.Runs, o.TimeLimit)
	dir, err := harness.WriteDetect(o.Store, started, cells, table)
	if err := printBench(stdout, table, dir, err); err != nil {
		return err
	}
	if o.Gate {
		if p := harness.DetectGate(cells); len(p) > 0 {
			return gateError{p}
		}
	}
	return nil
}

func newCmdBenchWindow(stdout, stderr io.Writer) *cobra.Command {
	o := harness.WindowOptions{}
	cmd := &cobra.Command{
		Use:   "window",
		Short: "Acknowledged ops/s for each α (--window), as ratios to the last one, measured in the same invocation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Progress = stderr
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			started := time.Now()
			rows, err := harness.BenchWindow(ctx, o)
			if err != nil {
				return err
			}
			table := harness.WindowTable(rows, o)
			dir, err := harness.WriteWindow(o.Store, started, rows, table)
			return printBench(stdout, table, dir, err)
		},
	}
	f := cmd.Flags()
	f.IntSliceVar(&o.Windows, "windows", []int{1, 8, 64}, "α values to measure; the last is the baseline")
	f.DurationVar(&o.TimeLimit, "time-limit", 20*time.Second, "time limit of each run")
	f.IntVar(&o.Nodes, "nodes", 5, "number of nodes")
	f.IntVar(&o.Concurrency, "concurrency", 10, "clients; α binds only when more commands are in flight than it allows")
	f.IntVar(&o.Rounds, "rounds", 1, "rounds of one run per α, interleaved; each α reports its median")
	f.Int64Var(&o.Seed, "seed", 1, "seed of every run")
	f.StringVar(&o.Store, "store", "store", "directory that keeps the runs")
	return cmd
}

func newCmdBenchMutants(stdout, stderr io.Writer) *cobra.Command {
	o := harness.MutantsOptions{}
	cmd := &cobra.Command{
		Use:   "mutants",
		Short: "Mutation score: mutants of the core and state machine, classified by the simulation, hunted by the live harness",
		Long: `Generates mutants of the protocol core (target/paxos, target/quorum) and the state machine
(target/kv) with go/ast: comparisons and equality flipped, conditions negated, constants off by
one, calls, assignments and returns removed. Each mutant is built (go test -overlay; run from the
source tree, with the go command on PATH) and judged by the deterministic simulation: unsafe when a
safety invariant breaks (agreement, prefix order, monotonic promises, linearizable reads, the state
machine's specification) within --budget schedules of every fault profile; otherwise liveness-only,
crash, hang, or no invariant broken (equivalent, or beyond the simulation's reach).

Then every unsafe mutant is built into paxtest and run live with the default nemesis, up to --runs
runs of --time-limit (workloads alternating register, append), stopping at the first invalid run.
Prints the table and each survivor's diff; writes mutants.md and mutants.json under
--store/bench-mutants-<time>/.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Progress = stderr
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			started := time.Now()
			rep, err := harness.Mutants(ctx, o)
			if err != nil {
				return err
			}
			table := harness.MutantsTable(rep)
			dir, err := harness.WriteMutants(o.Store, started, rep, table)
			return printBench(stdout, table, dir, err)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Src, "src", ".", "paxtest's source tree (mutants are built from it)")
	f.IntVar(&o.Budget, "budget", 150, "simulation schedules per fault profile and mutant")
	f.DurationVar(&o.SimLimit, "sim-limit", 2*time.Minute, "a mutant's simulation budget in wall time (past it: hang)")
	f.IntVar(&o.Runs, "runs", 3, "live runs per unsafe mutant, stopping at the first catch")
	f.DurationVar(&o.TimeLimit, "time-limit", 60*time.Second, "time limit of each live run")
	f.Int64Var(&o.Seed, "seed", 1, "seed of the first live run of each mutant; run i uses seed+i")
	f.StringVar(&o.Only, "only", "", "only mutants whose id (file:line:col:operator) matches this regexp")
	f.IntVar(&o.Limit, "limit", 0, "at most this many mutants, spread evenly (0: all)")
	f.BoolVar(&o.Live, "live", true, "run the live harness on every unsafe mutant")
	f.StringVar(&o.Classified, "classified", "", "take the simulation classes from this mutants.json of an earlier bench on the same source")
	f.IntVar(&o.Jobs, "jobs", 0, "simulations in parallel (0: one per core)")
	f.StringVar(&o.Store, "store", "store", "directory that keeps the runs")
	return cmd
}

func newCmdBenchCheck(stdout, stderr io.Writer) *cobra.Command {
	o := harness.BenchCheckOptions{}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "paxtest check against porcupine alone on the same operations: time ratio and peak memory per history size",
		Long: `For each --ops size, builds a register history (generated as the register workload makes
one, or --from a run directory whose operations are repeated with keys renamed), writes it as a run
directory, then times porcupine alone on its operations and paxtest check on the run directory (read,
check, results, report), each in a process of its own (porcupine's loads the history untimed and
times porcupine's call), both in this invocation, --rounds times each, alternating. Prints the ratio of the medians, the check's peak RSS and its time per
operation; writes check.md and check.json (every round's times) under --store/bench-check-<time>/.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Progress, o.Started = stderr, time.Now()
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			rows, err := harness.BenchCheck(ctx, o)
			if err != nil {
				return err
			}
			table := harness.BenchCheckTable(rows)
			dir, err := harness.WriteBenchCheck(o.Store, o.Started, rows, table)
			return printBench(stdout, table, dir, err)
		},
	}
	f := cmd.Flags()
	f.IntSliceVar(&o.Ops, "ops", []int{100_000, 300_000, 1_000_000}, "history sizes, in operations")
	f.StringVar(&o.From, "from", "", "a register run directory whose operations are repeated (default: a generated history)")
	f.Int64Var(&o.Seed, "seed", 1, "seed of the generated history")
	f.StringVar(&o.Store, "store", "store", "directory that keeps the histories and the table")
	f.IntVar(&o.Rounds, "rounds", 3, "timings of each side per size, alternating; their medians are compared")
	return cmd
}

// newCmdBenchPorcupine is bench check's baseline, run as a process of its
// own: it prints porcupine's time on a register run directory's operations.
func newCmdBenchPorcupine(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:    "porcupine DIR",
		Short:  "Porcupine alone on a register run directory's operations: prints its time in seconds (bench check's baseline)",
		Args:   cobra.ExactArgs(1),
		Hidden: true,
		RunE: func(_ *cobra.Command, args []string) error {
			d, err := harness.TimePorcupine(args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "%.6f\n", d.Seconds())
			return err
		},
	}
}

// printBench prints a bench's table and where it was written, once the
// writing succeeded.
func printBench(stdout io.Writer, table, dir string, err error) error {
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, table)
	fmt.Fprintf(stdout, "written to %s\n", dir)
	return nil
}

func newCmdBenchCompare(stdout, stderr io.Writer) *cobra.Command {
	o := harness.CompareOptions{}
	cmd := &cobra.Command{
		Use:   "compare",
		Short: "Systems side by side: throughput, latency and unavailability after a leader kill, as ratios to the first",
		Long: `Runs every --db on every --nodes size --rounds times, interleaved (each round runs every system
once), with the same register workload, seed and schedule: steady load, then the leader killed
halfway through the run and restarted 5 s later. Prints, per system and size, the medians of the
acknowledged operations per second and the p50/p99 latency before the kill, and how long after the
kill a write invoked after it was first acknowledged, each as a ratio to the first system on the
same size; writes compare.md and compare.json (every round) under --store/bench-compare-<time>/.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Progress, o.Started = stderr, time.Now()
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			rows, dir, err := harness.Compare(ctx, o)
			return printBench(stdout, harness.CompareTable(rows), dir, err)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.DBs, "db", []string{"paxtest", "etcd"}, "the systems, comma-separated; the first is the baseline")
	f.IntSliceVar(&o.Nodes, "nodes", []int{3, 5}, "cluster sizes")
	f.IntVar(&o.Rounds, "rounds", 3, "runs of each system per size, interleaved; the medians are compared")
	f.DurationVar(&o.TimeLimit, "time-limit", 20*time.Second, "each run's length; the leader is killed halfway")
	f.Int64Var(&o.Seed, "seed", 1, "seed of the first round (the next rounds add one)")
	f.StringVar(&o.Store, "store", "store", "directory that keeps the runs and the table")
	return cmd
}
