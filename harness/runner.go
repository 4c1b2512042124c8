// Package harness is the top of the program: the orchestration of a test
// (`paxtest run`: lay out a run, start the cluster, drive the workload and
// the nemesis against one clock, heal, read every key, sample the nodes'
// logs, tear everything down, check the history from disk) and of
// everything made of runs: check, report, replay, shrink, soak and the
// benches. What it drives stands below it: the cluster and its launcher
// (harness/cluster), the run directory (harness/layout), the mutants
// (harness/mutate).
//
// It wires the other packages together; protocol, fault, workload and
// checking logic live in them.
package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/paxtest/paxtest/checker"
	"github.com/paxtest/paxtest/checker/history"
	"github.com/paxtest/paxtest/harness/db"
	"github.com/paxtest/paxtest/harness/disk"
	"github.com/paxtest/paxtest/harness/layout"
	"github.com/paxtest/paxtest/nemesis"
	"github.com/paxtest/paxtest/nemesis/fault"
	"github.com/paxtest/paxtest/reports"
	"github.com/paxtest/paxtest/target/bugs"
	"github.com/paxtest/paxtest/workloads"
)

// Options are the flags of `paxtest run`.
type Options struct {
	Nodes           int           `json:"nodes"`
	Nemesis         string        `json:"nemesis"`
	Partition       string        `json:"partition"`
	NemesisInterval time.Duration `json:"nemesis_interval"`
	Workload        string        `json:"workload"`
	TimeLimit       time.Duration `json:"time_limit"`
	Concurrency     int           `json:"concurrency"`
	Rate            float64       `json:"rate"`
	Seed            int64         `json:"seed"`
	Bugs            string        `json:"bugs"`
	// DB is the system under test (harness/db: paxtest, the built-in
	// target, by default) and DBConfig the file that describes it, for
	// the systems that take one.
	DB       string `json:"db"`
	DBConfig string `json:"db_config,omitempty"`
	// NoLogs says the system under test serves no committed log: the run
	// has no logs.jsonl, and the checks of the nodes' logs do not apply.
	// Validate finds it out, and whether the system can change its
	// members (noMembers), from the system itself.
	NoLogs bool `json:"no_logs,omitempty"`
	// NoInvariants says its nodes report no invariants of their own: the
	// node-invariants check does not apply.
	NoInvariants bool `json:"no_invariants,omitempty"`
	noMembers    bool
	Net          string `json:"net"`
	// Hosts is where the nodes run: "local" (processes on this machine's
	// loopback; "" in runs recorded before it existed), "netns" (each in
	// a network namespace of its own, made for the run) or "ssh" (the
	// hosts HostFile lists, over SSH).
	Hosts    string `json:"hosts,omitempty"`
	HostFile string `json:"host_file,omitempty"`
	// Disk is the disk layer under the nodes' data directories: "" (none,
	// unless a nemesis turns it on), "none", or "lazy" (harness/disk:
	// unsynced writes held in memory, which a power loss drops). A nemesis
	// that needs it turns it on; --nemesis all's power losses turn it on
	// where the machine can mount it, unless it is "none".
	Disk         string        `json:"disk,omitempty"`
	Store        string        `json:"store"`
	CheckTimeout time.Duration `json:"check_timeout"`
	// MinAvailability is the power floor's least share of the load's
	// seconds with an acknowledged operation (--min-availability); below
	// it, or short of the floor's other parts, the verdict is unknown. 0:
	// no floor on availability (runs recorded before it existed).
	MinAvailability float64 `json:"min_availability"`
	// NoPowerFloor turns the power floor off (--no-power-floor): the
	// verdict rests on the checkers alone.
	NoPowerFloor bool `json:"no_power_floor,omitempty"`
	// LeftOut are the kinds of --nemesis all that need more nodes than
	// the cluster has, each with why; the run goes on without them.
	LeftOut map[string]string `json:"left_out,omitempty"`
	// Recovery is the system's recovery time as its db tells it
	// (db.DB.Recovery), set by Validate: the faults are paced by it.
	Recovery time.Duration `json:"recovery,omitempty"`
	// BoundClients starts every operation at the worker's own node.
	BoundClients bool `json:"bound_clients,omitempty"`
	// Spares are nodes outside the initial configuration that a membership
	// nemesis may add (set by Run when --nemesis has membership).
	Spares int `json:"spares,omitempty"`
	// Window is α for every node (0: the node's default, paxos.DefaultWindow).
	Window int `json:"window,omitempty"`
	// StopOnDivergence ends the run two seconds after the log samples first
	// show two chosen values for one index (the verdict is invalid anyway),
	// instead of running to the time limit.
	StopOnDivergence bool `json:"stop_on_divergence,omitempty"`
	// Schedule is a schedule file (nemesis.Script) run as a nemesis
	// besides --nemesis.
	Schedule string `json:"schedule,omitempty"`
	// Replay is the run directory whose recorded schedule this run
	// re-executes instead of a nemesis.
	Replay string `json:"replay,omitempty"`
	// StartedAt is the wall-clock time of the run clock's zero, written
	// once the cluster is up, so node logs line up with history times.
	StartedAt time.Time `json:"started_at,omitzero"`
	// Source and Format, for a history imported from another tool: the
	// file it came from and its format (the run has no cluster).
	Source string `json:"source,omitempty"`
	Format string `json:"format,omitempty"`
	// Binary and Env override how nodes are launched (tests).
	Binary string   `json:"-"`
	Env    []string `json:"-"`
	// Progress receives the live status line.
	Progress io.Writer `json:"-"`
	IsTTY    bool      `json:"-"`
}

// DefaultOptions are `paxtest run`'s defaults, the one place they are
// written: the command's flags and every bench start from them. The
// interval between faults is 0: the system's own pace (Validate).
func DefaultOptions() Options {
	return Options{
		Nodes: 5, Nemesis: "all", Partition: nemesis.ShapeRandom,
		Workload: "register", TimeLimit: 60 * time.Second, Concurrency: 10, Hosts: HostsLocal, Store: "store",
		CheckTimeout: 2 * time.Minute, DB: "paxtest", MinAvailability: DefaultMinAvailability,
	}
}

// DefaultMinAvailability is the power floor's default: a run whose load
// had acknowledged operations in fewer than this share of its seconds is
// unknown. Every built-in nemesis on the built-in target and on etcd
// clears it on this machine (README, "What a run proves").
const DefaultMinAvailability = 0.5

// The pace of a run, in multiples of the system's recovery time R
// (db.DB.Recovery): the default --nemesis-interval; how long the general
// mix waits for an acknowledgement after a heal before it starts the
// next fault anyway (and says so); how close to the load's end a fault
// may end and need no acknowledgement within the load; how long a node
// may take to serve again after the final heal before it is reported as
// did-not-recover.
const (
	intervalPerRecovery = 5
	pacePerRecovery     = 5
	gracePerRecovery    = 3
	servePerRecovery    = 20
)

// recovery is the run's recovery time (a second for runs recorded
// before the db told it).
func (o *Options) recovery() time.Duration {
	if o.Recovery > 0 {
		return o.Recovery
	}
	return time.Second
}

// asksForFaults reports whether the run was asked to inject faults.
func (o *Options) asksForFaults() bool {
	return (o.Nemesis != "" && o.Nemesis != "none") || o.Schedule != "" || o.Replay != ""
}

// floor is the run's power floor. Its grace is the longer of a few
// recovery times and the interval between faults: the general mix lifts
// each fault within an interval, so only a fault held longer (a
// schedule's, a replay's) is asked for an acknowledgement while it is
// in force at the load's end.
func (o *Options) floor() checker.Floor {
	return checker.Floor{MinAvailability: o.MinAvailability, Faults: o.asksForFaults(),
		Grace: max(gracePerRecovery*o.recovery(), o.NemesisInterval), Cluster: checker.Cluster{Nodes: o.Nodes, Recovery: o.recovery()}}
}

// UsageError is bad input from the user (exit 254).
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Validate checks every option and names the bad value and the accepted ones.
func (o *Options) Validate() error {
	bad := func(format string, args ...any) error { return UsageError{fmt.Errorf(format, args...)} }
	if o.Nodes < 1 || o.Nodes > 9 {
		return bad("--nodes %d: use 1 to 9", o.Nodes)
	}
	if o.DB == "" {
		o.DB = "paxtest" // a run recorded before --db existed ran the built-in target
	}
	if o.DBConfig != "" {
		abs, err := filepath.Abs(o.DBConfig) // a replay from another directory finds it
		if err != nil {
			return bad("--db-config %s: %v", o.DBConfig, err)
		}
		o.DBConfig = abs
	}
	sut, err := o.openDB()
	if err != nil {
		return err
	}
	_, logs := sut.(db.LogReader)
	_, members := sut.(db.MemberChanger)
	_, shared := sut.(db.SharedPeers)
	_, invariants := sut.(db.InvariantReporter)
	o.NoLogs, o.NoInvariants, o.noMembers = !logs, !invariants, !members
	o.Recovery = sut.Recovery()
	if o.NemesisInterval == 0 {
		o.NemesisInterval = intervalPerRecovery * o.Recovery
	}
	if err := sut.Close(); err != nil { // a probe: the run opens its own
		return err
	}
	if err := o.validateHosts(); err != nil {
		return err
	}
	if shared && o.Net == "iptables" && o.onLoopback() {
		// iptables tells links apart by their source and destination
		// addresses; all of these connections come from 127.0.0.1
		return bad("--net iptables cannot tell apart the peer connections of --db %s (its nodes share one address per peer, and every connection's source is 127.0.0.1): use --net proxy", o.DB)
	}
	if o.Replay != "" {
		if _, err := fault.Read(replaySchedule(o.Replay)); err != nil {
			return bad("--replay %s: %v (was it recorded by this version of paxtest?)", o.Replay, err)
		}
	}
	if err := o.validateNemeses(); err != nil {
		return err
	}
	if _, err := workloads.New(o.Workload, 1, 0, 0); err != nil {
		return bad("--workload: %v", err)
	}
	if o.Net != "proxy" && o.Net != "iptables" {
		return bad("--net %q: accepted: proxy, iptables", o.Net)
	}
	if o.Disk != "" && o.Disk != "none" && o.Disk != DiskLazy {
		return bad("--disk %q: accepted: none, lazy", o.Disk)
	}
	if o.TimeLimit <= 0 {
		return bad("--time-limit must be positive, not %v", o.TimeLimit)
	}
	if o.NemesisInterval < 0 {
		return bad("--nemesis-interval must be positive (or 0 for the system's pace), not %v", o.NemesisInterval)
	}
	if o.MinAvailability < 0 || o.MinAvailability > 1 {
		return bad("--min-availability %v: a share of the load's seconds, from 0 (no floor) to 1", o.MinAvailability)
	}
	if o.Concurrency < 1 {
		return bad("--concurrency must be at least 1, not %d", o.Concurrency)
	}
	if o.Rate < 0 {
		return bad("--rate must be 0 (as fast as possible) or positive, not %v", o.Rate)
	}
	if o.CheckTimeout <= 0 {
		return bad("--check-timeout must be positive, not %v", o.CheckTimeout)
	}
	if o.Window < 0 {
		return bad("--window must be positive (or 0 for the node's default), not %d", o.Window)
	}
	return nil
}

// validateNemeses checks --nemesis, --partition and --nemesis-schedule,
// and that the cluster is large enough for what they name.
func (o *Options) validateNemeses() error {
	bad := func(format string, args ...any) error { return UsageError{fmt.Errorf(format, args...)} }
	nems, err := nemesis.Parse(o.Nemesis, o.Partition)
	if err != nil {
		return bad("--nemesis/--partition: %v", err)
	}
	if _, _, err := nemesis.Fit(o.Nemesis, nems, o.Nodes); err != nil {
		return bad("--nemesis %v", err)
	}
	if o.Schedule == "" {
		return nil
	}
	sc, err := nemesis.ReadScript(o.Schedule)
	if err != nil {
		return bad("--nemesis-schedule: %v", err)
	}
	if sc.MinNodes > o.Nodes {
		return bad("--nemesis-schedule %s needs at least %d nodes (its roles, or its option min-nodes), and --nodes %d has fewer", o.Schedule, sc.MinNodes, o.Nodes)
	}
	return nil
}

// The places nodes can run (--hosts).
const (
	HostsLocal = "local"
	HostsNetns = "netns"
	HostsSSH   = "ssh"
)

// onLoopback reports whether the nodes run on this machine's loopback.
func (o *Options) onLoopback() bool { return o.Hosts == "" || o.Hosts == HostsLocal }

// validateHosts checks --hosts and --host-file, and gives --net its
// default: faults where the nodes are, on their hosts or by this
// machine's proxies.
func (o *Options) validateHosts() error {
	if o.Net == "" {
		o.Net = "proxy"
		if !o.onLoopback() {
			o.Net = "iptables"
		}
	}
	switch o.Hosts {
	case "", HostsLocal, HostsNetns:
		if o.HostFile != "" {
			return UsageError{fmt.Errorf("--host-file %s is for --hosts ssh, not --hosts %s", o.HostFile, o.Hosts)}
		}
	case HostsSSH:
		if o.HostFile == "" {
			return UsageError{errors.New("--hosts ssh needs --host-file FILE, listing the hosts (see docs/hosts.md)")}
		}
		abs, err := filepath.Abs(o.HostFile) // a replay from another directory finds it
		if err != nil {
			return UsageError{fmt.Errorf("--host-file %s: %w", o.HostFile, err)}
		}
		o.HostFile = abs
	default:
		return UsageError{fmt.Errorf("--hosts %q: accepted: %s, %s, %s", o.Hosts, HostsLocal, HostsNetns, HostsSSH)}
	}
	return nil
}

// DiskLazy is --disk lazy.
const DiskLazy = "lazy"

// openDB opens the system under test the options name, refusing (as a
// usage error) a name, description file or bug switch it does not take.
func (o *Options) openDB() (db.DB, error) {
	b, err := bugs.Parse(o.Bugs)
	if err != nil {
		return nil, UsageError{fmt.Errorf("--bug: %w", err)}
	}
	sut, err := db.Open(o.DB, db.Options{Binary: o.Binary, Config: o.DBConfig, Bugs: b.Enabled(), Seed: o.Seed,
		RequestTimeout: time.Second, Window: o.Window})
	if err != nil {
		return nil, UsageError{err}
	}
	return sut, nil
}

// fitNemeses gives the run what its nemeses need (bound clients, spare
// nodes, the lazy disk) and refuses what the system or the machine cannot
// give. A replay keeps what the recorded run had.
func (o *Options) fitNemeses(nems []nemesis.Nemesis) error {
	if o.Replay == "" {
		// clients are mixed (half bound to nodes) unless every nemesis
		// needs all of them to keep asking their own node
		bound := len(nems) > 0
		for _, n := range nems {
			b, ok := n.(interface{ BoundClients() bool })
			bound = bound && ok && b.BoundClients()
			if sp, ok := n.(interface{ NeedsSpares() bool }); ok && sp.NeedsSpares() && o.Spares == 0 {
				o.Spares = 2 // nodes the membership nemesis can add
			}
			if d, ok := n.(interface{ NeedsLazyDisk() bool }); ok && d.NeedsLazyDisk() && (o.Disk == "" || o.Disk == "none") {
				if o.Disk == "none" {
					return UsageError{fmt.Errorf("--nemesis %s drops unsynced writes, which needs --disk lazy, not --disk none", n.Name())}
				}
				o.Disk = DiskLazy
			}
			if d, ok := n.(interface{ NeedsLocalData() bool }); ok && d.NeedsLocalData() && o.Hosts == HostsSSH {
				return UsageError{fmt.Errorf("--nemesis %s acts on the nodes' files on this machine; --hosts ssh keeps them on the hosts (use --hosts netns, or leave it out)", n.Name())}
			}
			if d, ok := n.(interface{ WantsLazyDisk() bool }); ok && d.WantsLazyDisk() && o.Disk == "" && o.Hosts != HostsSSH && disk.Available() == nil {
				o.Disk = DiskLazy // --nemesis all's power losses, where the machine can
			}
		}
		o.BoundClients = o.BoundClients || bound
	}
	if err := o.offersMembership(); err != nil {
		return err
	}
	if o.Disk == DiskLazy {
		if o.Hosts == HostsSSH {
			return UsageError{errors.New("--disk lazy mounts the nodes' data directories on this machine; --hosts ssh keeps them on the hosts")}
		}
		if err := disk.Available(); err != nil {
			return UsageError{fmt.Errorf("--disk lazy: %w (run as root on a machine with FUSE, or choose nemeses without power-loss)", err)}
		}
	}
	return nil
}

// offersMembership refuses a membership nemesis (one that needs spare
// nodes) against a system that cannot change its membership.
func (o *Options) offersMembership() error {
	if o.Spares > 0 && o.noMembers {
		return UsageError{fmt.Errorf("--nemesis %s changes the membership, which --db %s does not offer (an exec system offers it with \"members\": true)", o.Nemesis, o.DB)}
	}
	return nil
}

// Name is the run's directory name under the store.
func (o *Options) Name() string {
	n := strings.ReplaceAll(o.Nemesis, ",", "+")
	if o.Schedule != "" {
		sched := strings.TrimSuffix(filepath.Base(o.Schedule), filepath.Ext(o.Schedule))
		if n == "" || n == "none" {
			n = sched
		} else {
			n += "+" + sched
		}
	}
	if n == "" {
		n = "none"
	}
	if o.Replay != "" {
		n = "replay"
	}
	name := o.Workload + "-" + n
	if o.Bugs != "" && o.Bugs != "none" {
		name += "-bug-" + strings.ReplaceAll(o.Bugs, ",", "+")
	}
	return name
}

// Run performs a whole test run and returns its checked results. An error
// means the harness itself failed (or the input was bad: UsageError).
func Run(ctx context.Context, o Options) (reports.Results, error) {
	if err := o.Validate(); err != nil {
		return reports.Results{}, err
	}
	if o.Replay != "" {
		// store/latest moves to this run as soon as it starts: replay what
		// it pointed at before
		if p, err := filepath.EvalSymlinks(o.Replay); err == nil {
			o.Replay = p
		}
	}
	nems, err := nemesis.Parse(o.Nemesis, o.Partition)
	if err != nil {
		return reports.Results{}, UsageError{fmt.Errorf("--nemesis: %w", err)}
	}
	if nems, o.LeftOut, err = nemesis.Fit(o.Nemesis, nems, o.Nodes); err != nil {
		return reports.Results{}, UsageError{fmt.Errorf("--nemesis %w", err)}
	}
	var scriptText []byte
	if o.Schedule != "" {
		sc, err := nemesis.ReadScript(o.Schedule)
		if err != nil {
			return reports.Results{}, UsageError{fmt.Errorf("--nemesis-schedule: %w", err)}
		}
		nems = append(nems, &nemesis.Scripted{Label: sc.Name, Scripts: []*nemesis.Script{sc}})
		if scriptText, err = os.ReadFile(o.Schedule); err != nil {
			return reports.Results{}, UsageError{fmt.Errorf("--nemesis-schedule: %w", err)}
		}
	}
	if err := o.fitNemeses(nems); err != nil {
		return reports.Results{}, err
	}
	wl, _ := workloads.New(o.Workload, o.Concurrency, 0, 0)
	if o.Seed == 0 {
		o.Seed = time.Now().UnixNano() % 1_000_000
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	lay, err := layout.NewRun(o.Store, o.Name(), time.Now())
	if err != nil {
		return reports.Results{}, err
	}
	if err := reports.WriteJSON(lay.Config(), o); err != nil {
		return reports.Results{}, err
	}
	if scriptText != nil {
		if err := os.WriteFile(filepath.Join(lay.Dir, "nemesis-schedule.pax"), scriptText, 0o644); err != nil {
			return reports.Results{}, fmt.Errorf("keep the schedule file: %w", err)
		}
	}
	fmt.Fprintf(o.Progress, "run %s (seed %d)\n", lay.Dir, o.Seed)
	interrupted, stop, err := execute(ctx, o, lay, nems, wl)
	if err != nil {
		return reports.Results{Dir: lay.Dir}, errors.Join(err, stop())
	}
	if _, serr := os.Stat(lay.History()); interrupted && errors.Is(serr, fs.ErrNotExist) {
		// interrupted while the cluster started: nothing to check
		res := reports.Results{Dir: lay.Dir, Interrupted: true, Verdict: checker.Unknown, Checkers: map[string]checker.Result{},
			Anomalies: []checker.Anomaly{}, NotRun: map[string]string{}}
		for _, n := range Checkers() {
			res.NotRun[n] = "interrupted before the first operation: there is no history"
		}
		return res, errors.Join(reports.WriteJSON(lay.Results(), res), stop())
	}
	// the files are closed: check them while the nodes stop
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	t := time.Now()
	res, err := check(CheckOptions{Dir: lay.Dir, Timeout: o.CheckTimeout}, interrupted)
	if pe := new(history.ParseError); errors.As(err, &pe) {
		// the run wrote this history: refusing it is the harness's failure
		// (exit 255), not bad input
		err = fmt.Errorf("the run's own history is refused, a harness bug: %w", pe)
	}
	fmt.Fprintf(o.Progress, "phase check and report: %.2fs\n", time.Since(t).Seconds())
	return res, errors.Join(err, <-stopped)
}
