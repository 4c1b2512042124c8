package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"sync"
	"time"

	"github.com/paxtest/paxtest/harness/cluster"
	"github.com/paxtest/paxtest/harness/db"
	"github.com/paxtest/paxtest/harness/disk"
	"github.com/paxtest/paxtest/harness/hosts"
	"github.com/paxtest/paxtest/harness/layout"

	"github.com/paxtest/paxtest/checker/history"
	"github.com/paxtest/paxtest/nemesis"
	"github.com/paxtest/paxtest/nemesis/fault"
	"github.com/paxtest/paxtest/nemesis/network"
	"github.com/paxtest/paxtest/reports"
	"github.com/paxtest/paxtest/workloads"
)

// run is one execution of a test, phase by phase: start (cluster, history,
// sampler, fault executor), load (workload, nemesis and sampler together
// until the time limit), heal, final reads. Checking and reporting read
// the files it leaves (check). Teardown always runs and collects every
// error.
type run struct {
	o    Options
	lay  layout.Layout
	nems []nemesis.Nemesis
	wl   workloads.Workload

	net     network.FaultLayer
	delays  network.Delayer // nil when the layer only cuts links
	cluster *cluster.Cluster
	clock   Clock
	hist    *history.Writer
	samp    *sampler
	x       *nemesis.Exec
	sched   *nemesis.Schedule
	replay  *nemesis.Replay
	wcfg    workloads.Config
	counts  *workloads.Counts

	closers []func() error // teardown, run in reverse
	mu      sync.Mutex
	nemErrs []error
}

// The cluster is what the nemesis acts on: checked here, at compile time.
var (
	_ nemesis.Control       = (*cluster.Cluster)(nil)
	_ nemesis.MemberControl = (*cluster.Cluster)(nil)
)

// errInterrupted ends a run whose context was cancelled (Ctrl-C): what it
// recorded is kept and checked as a prefix.
var errInterrupted = errors.New("interrupted")

// execute runs the cluster, workload and nemesis; it reports whether the
// run was interrupted. The run's files are closed before it returns, its
// errors collected; stopping the cluster is left to stop, which the
// caller must call (it may check the files meanwhile).
func execute(ctx context.Context, o Options, lay layout.Layout, nems []nemesis.Nemesis, wl workloads.Workload) (interrupted bool, stop func() error, err error) {
	r := &run{o: o, lay: lay, nems: nems, wl: wl}
	stop = func() error { return nil }
	defer func() {
		err = errors.Join(err, r.teardown())
		if r.cluster != nil {
			stop = func() error {
				if err := r.cluster.Close(); err != nil {
					return fmt.Errorf("teardown: %w", err)
				}
				return nil
			}
		}
	}()
	began := time.Now()
	for i, phase := range []func(context.Context) error{r.start, r.load, r.heal, r.finalReads} {
		t := time.Now()
		err := phase(ctx)
		fmt.Fprintf(r.o.Progress, "phase %s: %.2fs (%.2fs since the start)\n", phaseNames[i], time.Since(t).Seconds(), time.Since(began).Seconds())
		if err != nil {
			if errors.Is(err, errInterrupted) || ctx.Err() != nil {
				return true, stop, nil
			}
			return false, stop, err
		}
	}
	return false, stop, nil
}

// phaseNames name execute's phases in progress lines.
var phaseNames = []string{"start", "load", "heal", "final reads"}

func (r *run) onClose(f func() error) { r.closers = append(r.closers, f) }

func (r *run) teardown() error {
	var errs []error
	for i := len(r.closers) - 1; i >= 0; i-- {
		if err := r.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// powerLosser is the lazy disk as the nemesis drops writes through it
// (nil: none).
func powerLosser(l *disk.Lazy) nemesis.PowerLosser {
	if l == nil {
		return nil
	}
	return lossReporter{l}
}

type lossReporter struct{ l *disk.Lazy }

func (r lossReporter) PowerLoss(id int, tear *rand.Rand) (fmt.Stringer, error) {
	return r.l.PowerLoss(id, tear)
}

// newCluster opens the system under test and makes the cluster, on the
// lazy disk if the run asked for it; on failure it closes what it opened.
func (r *run) newCluster(h hosts.Hosts) (db.DB, *disk.Lazy, error) {
	o := r.o
	sut, err := o.openDB()
	if err != nil {
		return nil, nil, errors.Join(err, r.net.Close())
	}
	lazy, err := r.lazyDisk()
	if err != nil {
		return nil, nil, errors.Join(err, sut.Close(), r.net.Close())
	}
	cfg := cluster.Config{Nodes: o.Nodes, Spares: o.Spares, DB: sut, Env: o.Env, Dir: r.lay.Dir, Net: r.net}
	if h != nil {
		cfg.Launcher = h // the cluster closes it
	}
	if lazy != nil {
		cfg.Disk = lazy
	}
	if r.cluster, err = cluster.New(cfg); err != nil {
		if lazy != nil {
			err = errors.Join(err, lazy.Close())
		}
		return nil, nil, errors.Join(err, sut.Close(), r.net.Close())
	}
	return sut, lazy, nil
}

// lazyDisk is the lazy disk the run asked for (nil: none), after removing
// the lazy disks a killed harness left mounted.
func (r *run) lazyDisk() (*disk.Lazy, error) {
	if r.o.Disk != DiskLazy {
		return nil, nil
	}
	removed, err := disk.RemoveStale()
	for _, dir := range removed {
		fmt.Fprintf(r.o.Progress, "removed a lazy disk left mounted by a harness that was killed: %s\n", dir)
	}
	if err != nil {
		return nil, err
	}
	return disk.NewLazy(), nil
}

// closeHosts joins err with closing h (nil: none), which a cluster that
// was not made does not close.
func closeHosts(err error, h hosts.Hosts) error {
	if h == nil {
		return err
	}
	return errors.Join(err, h.Close())
}

// start brings up the fault layer and the cluster, then opens the run's
// files: history, log samples and the fault schedule.
func (r *run) start(ctx context.Context) error {
	o := r.o
	h, err := r.openHosts()
	if err != nil {
		return err
	}
	if err := r.faultLayer(h); err != nil {
		return closeHosts(err, h)
	}
	sut, lazy, err := r.newCluster(h)
	if err != nil {
		return closeHosts(err, h)
	}
	if d, ok := r.net.(interface{ CanDelay() bool }); ok && !d.CanDelay() {
		r.delays = nil // hosts whose kernel has no netem
	}
	// a system that serves no committed log (o.NoLogs) has no sampler:
	// its run has no logs.jsonl, and the checks of the nodes' logs do not
	// apply
	logs, _ := sut.(db.LogReader)
	damage := &dataDamager{c: r.cluster, lazy: lazy != nil, last: map[int]disk.Damaged{}}
	if dc, ok := sut.(db.DamageChecker); ok && (h == nil || h.Local()) {
		damage.checked = dc.CheckedFiles() // none where the data is on other hosts
	}
	if err := r.cluster.Start(ctx); err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return err
	}
	r.clock = NewClock()
	r.o.StartedAt = r.clock.Start()
	if err := reports.WriteJSON(r.lay.Config(), r.o); err != nil {
		return err
	}
	if r.hist, err = history.Create(r.lay.History()); err != nil {
		return err
	}
	r.onClose(r.hist.Close)
	if logs != nil {
		if r.samp, err = newSampler(r.lay.Logs(), r.cluster, logs, r.clock.Now); err != nil {
			return err
		}
		r.onClose(r.samp.close)
	}
	r.x, err = nemesis.NewExec(nemesis.ExecConfig{Cluster: r.cluster, Members: r.cluster, Net: r.net, Delays: r.delays,
		Disk: powerLosser(lazy), Data: damage, Rand: rand.New(rand.NewSource(o.Seed)), Now: r.clock.Now, Schedule: r.lay.Schedule()})
	if err != nil {
		return err
	}
	r.onClose(r.x.Close)
	r.x.Emit = r.emit
	if _, err := r.cluster.WaitLeader(ctx, 15*time.Second); err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		// the run goes on: what clients see of a leaderless cluster is evidence
		r.appendEvent(history.Event{Time: r.clock.Now(), Process: history.NemesisProcess, Type: history.Info, F: "no-leader", Detail: "at start: " + err.Error()})
	}
	var nodes []workloads.Node
	for _, n := range r.cluster.Nodes() {
		nodes = append(nodes, workloads.Node{Addr: n.ClientAddr, Conn: sut.Client(n.Node)})
	}
	r.counts = &workloads.Counts{}
	r.wcfg = workloads.Config{Nodes: nodes, Concurrency: o.Concurrency, Rate: o.Rate, Seed: o.Seed, Now: r.clock.Now,
		History: r.hist, Counts: r.counts, Bound: o.BoundClients, Mixed: !o.BoundClients}
	r.sched = &nemesis.Schedule{Nemeses: r.nems, Interval: o.NemesisInterval, X: r.x,
		Served: r.counts.LastOK.Load, Pace: pacePerRecovery * o.recovery()}
	if o.Replay != "" {
		ops, err := fault.Read(replaySchedule(o.Replay))
		if err != nil {
			return UsageError{fmt.Errorf("--replay: %w", err)}
		}
		r.replay = &nemesis.Replay{Ops: ops, Now: r.clock.Now}
	}
	return nil
}

// emit writes a performed fault op to the history; an op that failed is a
// nemesis error, which fails the run.
func (r *run) emit(op fault.Op, err error) {
	v, merr := json.Marshal(op)
	e := history.Event{Time: op.Time, Process: history.NemesisProcess, Type: history.Info, F: string(op.F), Value: v,
		Targets: op.Touched(), Detail: op.Describe()}
	if err != nil || merr != nil {
		err = errors.Join(err, merr)
		e.Error = err.Error()
		r.mu.Lock()
		r.nemErrs = append(r.nemErrs, err)
		r.mu.Unlock()
	}
	r.appendEvent(e)
}

// appendEvent writes a nemesis event; a history that cannot be written
// fails the run at teardown (the writer keeps its first error).
func (r *run) appendEvent(e history.Event) {
	if _, err := r.hist.Append(e); err != nil {
		r.mu.Lock()
		r.nemErrs = append(r.nemErrs, err)
		r.mu.Unlock()
	}
}

// load drives the workload, the nemesis (or the replay) and the sampler
// against one clock until the time limit.
func (r *run) load(ctx context.Context) error {
	o := r.o
	runCtx, stop := context.WithTimeout(ctx, o.TimeLimit)
	defer stop()
	faultCtx := runCtx
	if r.replay != nil {
		// a replay runs its schedule to the end: the workload goes on past
		// the time limit until it has, but never past three time limits
		var cancel context.CancelFunc
		faultCtx, cancel = context.WithTimeout(ctx, 3*o.TimeLimit)
		defer cancel()
		runCtx, stop = context.WithCancel(ctx)
		defer stop()
	}
	var wg sync.WaitGroup
	var wlErr error
	wg.Add(3)
	go func() { defer wg.Done(); wlErr = workloads.Run(runCtx, r.wcfg, r.wl) }()
	go func() { defer wg.Done(); r.faults(faultCtx, stop) }()
	go func() { defer wg.Done(); r.samp.run(runCtx, time.Second) }()
	if o.StopOnDivergence {
		go r.stopOnDivergence(runCtx, stop)
	}
	progressDone := make(chan struct{})
	go progress(runCtx, o, r.clock, r.counts, r.sched, progressDone)
	wg.Wait()
	<-progressDone
	if err := r.hist.Flush(); err != nil {
		return err
	}
	if wlErr != nil {
		return fmt.Errorf("workload: %w", wlErr)
	}
	if r.replay != nil {
		if err := reports.WriteJSON(r.lay.Replay(), r.replay.Report()); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return errInterrupted
	}
	r.mu.Lock()
	errs := append(r.nemErrs, r.sched.Errors()...)
	r.mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("nemesis: %w", errors.Join(errs...))
	}
	return nil
}

// faults runs the nemesis, or the replay (whose end, or the time limit,
// whichever is later, ends the load).
func (r *run) faults(ctx context.Context, stop func()) {
	if r.replay == nil {
		r.sched.Run(ctx)
		return
	}
	if err := r.replay.Run(ctx, r.x); err != nil {
		r.mu.Lock()
		r.nemErrs = append(r.nemErrs, err)
		r.mu.Unlock()
	}
	select { // the time limit still holds when the schedule ends early
	case <-time.After(r.o.TimeLimit - time.Duration(r.clock.Now())):
	case <-ctx.Done():
	}
	stop()
}

func (r *run) stopOnDivergence(ctx context.Context, stop func()) {
	select {
	case <-r.samp.divergence():
		r.appendEvent(history.Event{Time: r.clock.Now(), Process: history.NemesisProcess, Type: history.Info, F: "divergence",
			Detail: "two chosen values for one log index seen; the run stops in 2 s (--stop-on-divergence)"})
		sleepCtx(ctx, 2*time.Second)
		stop()
	case <-ctx.Done():
	}
}

// heal lifts every fault, waits for a leader and for every node to serve
// again (awaitServing).
func (r *run) heal(ctx context.Context) error {
	if err := r.x.HealAll(ctx, "heal-all", 0); err != nil {
		return fmt.Errorf("heal: %w", err)
	}
	// a paused node the nemesis lost track of (a replay cut short) resumes too
	for _, id := range r.cluster.IDs() {
		if err := r.cluster.Resume(id); err != nil {
			return fmt.Errorf("heal: %w", err)
		}
	}
	r.appendEvent(history.Event{Time: r.clock.Now(), Process: history.NemesisProcess, Type: history.Info, F: "heal-all", Detail: "every link open, every node running"})
	if _, err := r.cluster.WaitLeader(ctx, 20*time.Second); err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		// No leader after healing: the reads will fail and the log check
		// will say what it can; this is the target's failure, not ours.
		r.appendEvent(history.Event{Time: r.clock.Now(), Process: history.NemesisProcess, Type: history.Info, F: "no-leader", Detail: err.Error()})
	}
	return r.awaitServing(ctx)
}

// finalReads reads every key through every node in play while the
// sampler reads every node's final log: the main phase's writes are all in
// by now, and the final reads add no write.
func (r *run) finalReads(ctx context.Context) error {
	r.wcfg.OutOfPlay = func(i int) bool { return r.cluster.Retired(i + 1) }
	fmt.Fprintf(r.o.Progress, "final reads of %d keys through %d nodes\n", len(r.wl.Keys()), len(r.cluster.IDs()))
	sampled := make(chan error, 1)
	go func() { sampled <- r.samp.final(ctx) }()
	readErr := workloads.FinalReads(ctx, r.wcfg, r.wl)
	sampleErr := <-sampled
	if ctx.Err() != nil {
		return errInterrupted
	}
	if readErr != nil {
		readErr = fmt.Errorf("final reads: %w", readErr)
	}
	return errors.Join(readErr, sampleErr)
}

// replaySchedule is the schedule a --replay value names: a run (or shrink)
// directory's schedule.jsonl, or a schedule file itself.
func replaySchedule(path string) string {
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		return path
	}
	return layout.Layout{Dir: path}.Schedule()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func progress(ctx context.Context, o Options, clock Clock, counts *workloads.Counts, sched *nemesis.Schedule, done chan struct{}) {
	defer close(done)
	every := time.Second
	if !o.IsTTY {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var lastOK int64
	line := func() string {
		ok := counts.OK.Load()
		rate := float64(ok-lastOK) / every.Seconds()
		lastOK = ok
		faults := sched.Active()
		if faults == "" {
			faults = "none"
		}
		return fmt.Sprintf("[%3.0fs/%.0fs] %6.0f ops/s  ok %d  fail %d  info %d  faults: %s",
			time.Duration(clock.Now()).Seconds(), o.TimeLimit.Seconds(), rate, ok, counts.Fail.Load(), counts.Info.Load(), faults)
	}
	for {
		select {
		case <-ctx.Done():
			if o.IsTTY {
				fmt.Fprintln(o.Progress)
			}
			return
		case <-t.C:
			if o.IsTTY {
				fmt.Fprintf(o.Progress, "\r\033[K%s", line())
			} else {
				fmt.Fprintln(o.Progress, line())
			}
		}
	}
}

var (
	_ nemesis.PowerLosser = lossReporter{}
	_ nemesis.Corrupter   = (*dataDamager)(nil)
)

// dataDamager damages a node's synced data: its data directory, or, on
// the lazy disk, the directory that holds what was synced. A file is
// drawn among those the system checks; a node's last damage is kept,
// to be taken back.
type dataDamager struct {
	c       *cluster.Cluster
	lazy    bool
	checked []string // globs; none: the system names no file it checks
	mu      sync.Mutex
	last    map[int]disk.Damaged
}

func (d *dataDamager) dir(id int) string {
	if d.lazy {
		return disk.SyncedDir(d.c.Node(id).DataDir)
	}
	return d.c.Node(id).DataDir
}

// Checked: the system names files it checks.
func (d *dataDamager) Checked() bool { return len(d.checked) > 0 }

func (d *dataDamager) Corrupt(id int, dm *fault.Damage, r *rand.Rand) error {
	if dm.File == "" && !d.Checked() {
		return errors.New("the system names no files it checks for damage: name the file to damage")
	}
	got, err := disk.Damage(d.dir(id), dm.Kind, dm.File, dm.Offset, d.checked, r)
	if errors.Is(err, disk.ErrNoFile) {
		return fmt.Errorf("%w: %w", nemesis.ErrNothingToDamage, err)
	}
	if err != nil {
		return err
	}
	dm.File, dm.Offset, dm.Bit = got.File, got.Offset, got.Bit
	d.mu.Lock()
	d.last[id] = got
	d.mu.Unlock()
	return nil
}

func (d *dataDamager) Repair(id int) error {
	d.mu.Lock()
	got, ok := d.last[id]
	delete(d.last, id)
	d.mu.Unlock()
	if !ok {
		return fmt.Errorf("n%d's data was not damaged in this run", id)
	}
	return disk.Undo(d.dir(id), got)
}
