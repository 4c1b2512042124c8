package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/paxtest/paxtest/harness"
	"github.com/paxtest/paxtest/harness/db"
	"github.com/paxtest/paxtest/nemesis"
	"github.com/paxtest/paxtest/reports"
	"github.com/paxtest/paxtest/target/bugs"
	"github.com/paxtest/paxtest/target/paxos"
	"github.com/paxtest/paxtest/workloads"
)

func newCmdRun(stdout, stderr io.Writer) *cobra.Command {
	o := harness.DefaultOptions()
	var bugList []string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Launch a cluster, drive clients and a nemesis, and check the history",
		Long: `Launch a cluster of paxtest nodes as child processes, drive a workload and a nemesis
against it for --time-limit, heal every fault, read every key through every node, and check the
history with porcupine and the log-agreement check. The run is kept in --store/<name>/<time>/
(store/latest points at it).

Exit codes: 0 valid, 1 invalid, 2 unknown, 254 bad arguments, 255 the harness failed.`,
		Example: `  paxtest run --nemesis partition --time-limit 30s
  paxtest run --nemesis all --workload append --seed 7
  paxtest run --nemesis kill --bug no-fsync --nodes 3`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Bugs = strings.Join(bugList, ",")
			if o.Replay != "" {
				var err error
				if o, err = replayOptions(o); err != nil {
					return err
				}
			}
			o.Progress = stderr
			o.IsTTY = isTerminal(os.Stderr)
			return runRun(cmd.Context(), o, stdout)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Nodes, "nodes", o.Nodes, "number of nodes")
	f.StringVar(&o.Nemesis, "nemesis", o.Nemesis, "faults, comma-separated: "+strings.Join(nemesis.Kinds(), ", "))
	f.StringVar(&o.Partition, "partition", o.Partition, "partition shape: "+strings.Join(nemesis.Shapes(), ", "))
	f.DurationVar(&o.NemesisInterval, "nemesis-interval", o.NemesisInterval, "mean time between a fault's start and its heal, and between faults (0: the system's pace, 5 times its recovery time: 5s for the built-in target and etcd)")
	f.StringVar(&o.Workload, "workload", o.Workload, "workload: "+strings.Join(workloads.Names(), ", "))
	f.DurationVar(&o.TimeLimit, "time-limit", o.TimeLimit, "how long clients and nemesis run")
	f.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "number of client workers")
	f.Float64Var(&o.Rate, "rate", 0, "total operations per second (0: as fast as possible)")
	f.Int64Var(&o.Seed, "seed", 0, "seed for the nemesis, workload and nodes (0: random)")
	f.StringSliceVar(&bugList, "bug", nil, "bug switch passed to every node: "+strings.Join(bugs.Names(), ", "))
	f.StringVar(&o.DB, "db", o.DB, "system under test: "+strings.Join(db.Names(), ", "))
	f.StringVar(&o.DBConfig, "db-config", "", "file describing the system under test, for a --db that takes one")
	f.StringVar(&o.Binary, "db-binary", "", "the program the nodes run (default: --db paxtest this program; --db etcd the pinned release, built once into the user's cache)")
	f.StringVar(&o.Net, "net", o.Net, "network fault layer: proxy (no privileges; the default on loopback) or iptables (root; the default with --hosts netns or ssh, its rules on each node's host)")
	f.StringVar(&o.Hosts, "hosts", o.Hosts, "where the nodes run: local (processes on this machine's loopback), netns (each in a network namespace of its own, made for the run; root), or ssh (the hosts --host-file lists, reached over SSH; see docs/hosts.md)")
	f.StringVar(&o.HostFile, "host-file", "", "for --hosts ssh: the file listing the hosts, their addresses and SSH logins (see docs/hosts.md)")
	f.StringVar(&o.Disk, "disk", o.Disk, "disk layer under the nodes' data: none, or lazy (unsynced writes held in memory, dropped by a power loss; root and FUSE; on by itself for --nemesis power-loss, and for all where the machine can)")
	f.StringVar(&o.Store, "store", o.Store, "directory that keeps the runs")
	f.DurationVar(&o.CheckTimeout, "check-timeout", o.CheckTimeout, "linearizability check budget; past it the verdict is unknown")
	f.Float64Var(&o.MinAvailability, "min-availability", o.MinAvailability, "the power floor: the least share of the load's seconds with an acknowledged operation; below it (or with a fault no acknowledgement followed, a kind of operation never acknowledged, or no fault begun while serving) the verdict is unknown, not valid (0: no floor on availability)")
	f.BoolVar(&o.NoPowerFloor, "no-power-floor", false, "turn the power floor off: the verdict rests on the checkers alone")
	f.BoolVar(&o.BoundClients, "bound-clients", false, "start every operation at the worker's own node, as Jepsen binds clients to nodes (default: stay on the leader)")
	f.IntVar(&o.Window, "window", 0, "α for every node: most slots in flight beyond the commit point, and how far after its slot a configuration change takes effect (0: the node's default, "+strconv.Itoa(paxos.DefaultWindow)+")")
	f.BoolVar(&o.StopOnDivergence, "stop-on-divergence", false, "end the run 2 s after the log samples first show two chosen values for one index")
	f.StringVar(&o.Schedule, "nemesis-schedule", "", "run this schedule file as a nemesis too (see nemesis/scripts/*.pax for the language and examples)")
	f.StringVar(&o.Replay, "replay", "", "re-execute the fault schedule recorded in this run directory, with its configuration")
	return cmd
}

// replayOptions takes a recorded run's configuration; only --store and
// --check-timeout come from the command line.
func replayOptions(cli harness.Options) (harness.Options, error) {
	o, err := harness.ReadRunOptions(cli.Replay)
	if err != nil {
		return cli, fmt.Errorf("--replay: %w", err)
	}
	o.Replay, o.Store, o.CheckTimeout, o.StartedAt = cli.Replay, cli.Store, cli.CheckTimeout, time.Time{}
	return o, nil
}

func runRun(ctx context.Context, o harness.Options, stdout io.Writer) error {
	ctx, stop := interruptible(ctx)
	defer stop()
	res, err := harness.Run(ctx, o)
	if err != nil {
		if res.Dir != "" {
			return fmt.Errorf("run %s: %w", res.Dir, err)
		}
		return err
	}
	reports.Summary(stdout, res)
	return verdictError(res.Verdict)
}

type checkOptions struct {
	harness.CheckOptions
	harness.ImportOptions
}

func newCmdCheck(stdout, stderr io.Writer) *cobra.Command {
	o := checkOptions{}
	cmd := &cobra.Command{
		Use:   "check RUN_DIR | --format jepsen FILE",
		Short: "Re-run the checkers on a run directory and rewrite its results.json",
		Long: `Re-run the checkers from the files of a run directory (config.json, history.jsonl and, for the
nodes' logs, logs.jsonl); the history is only read. Every line of the history is checked: a line
it does not understand (a missing or non-numeric time, an unknown operation, a value of the wrong
type, an index that does not increase, a completion without its invocation) exits 254 naming the
file, line and field; a last line the run never finished writing is reported as torn and the rest
is checked.

--checkers chooses the checkers (default: every one that applies: linearizable or append, then
log-agreement and node-invariants, which need logs.jsonl, and stats); results.json lists which ran
and which did not. A checker that was asked for and cannot run makes the verdict unknown, never
valid: to judge a history another tool wrote, without node logs, use --checkers linearizable,stats.

--format jepsen FILE imports a Jepsen register history (history.edn of a single-key or an
independent cas-register test, or knossos's test data): the events' order is their time, :read,
:write and :cas are get, put and cas, :fail did not take effect. It is written as a run directory
of its own under --store/jepsen-<name>/ and checked there (default checker: linearizable).
Exits as run would: 0 valid, 1 invalid, 2 unknown, 254 bad input.`,
		Example: `  paxtest check store/latest
  paxtest check --checkers linearizable,stats my-tool-run/
  paxtest check --format jepsen history.edn`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			o.Dir, o.File = args[0], args[0]
			return runCheck(o, stdout)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.Timeout, "check-timeout", 0, "linearizability check budget (default: the run's)")
	f.StringSliceVar(&o.Checkers, "checkers", nil, "checkers to run: "+strings.Join(harness.Checkers(), ", ")+" (linearizable is linearizability)")
	f.StringVar(&o.Format, "format", "paxtest", "the history's format: "+strings.Join(harness.Formats(), ", ")+" (jepsen: FILE is an EDN history)")
	f.StringVar(&o.Store, "store", "store", "with --format jepsen: where the imported run directory is made")
	return cmd
}

func runCheck(o checkOptions, stdout io.Writer) error {
	if o.Format != "paxtest" {
		dir, err := harness.Import(o.ImportOptions)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "imported %s into %s\n", o.File, dir)
		o.Dir = dir
	} else if st, err := os.Stat(o.Dir); err != nil || !st.IsDir() {
		return usagef("%s is not a run directory", o.Dir)
	}
	res, err := harness.Check(o.CheckOptions)
	if err != nil {
		return err
	}
	reports.Summary(stdout, res)
	return verdictError(res.Verdict)
}

func newCmdReport(stdout, _ io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "report RUN_DIR",
		Short: "Re-render a run directory's index.html from its files",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := harness.Report(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(args[0], "index.html"))
			return nil
		},
	}
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
