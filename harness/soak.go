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

	"github.com/paxtest/paxtest/harness/layout"
	"github.com/paxtest/paxtest/reports"
	"github.com/paxtest/paxtest/target/bugs"
)

// SoakOptions are the flags of `paxtest soak`.
type SoakOptions struct {
	Duration  time.Duration
	TimeLimit time.Duration
	JUnit     string
	Store     string
	Nodes     int
	Seed      int64
	Nemeses   []string // rotated, one per run
	Workloads []string // rotated
	// SelfCheck makes every n-th run (0: none) a bug switch with the nemesis
	// that exposes it; such a run passes only when it is caught.
	SelfCheck int
	// KeepBytes is the budget for this soak's valid runs: past it the
	// bulkiest files of the oldest valid runs are removed.
	KeepBytes int64
	// Shard is this soak's part of a soak split across machines: it runs
	// runs Shard.I-1, Shard.I-1+Shard.N, … of the one rotation, so the
	// shards' seeds are disjoint (zero: the whole rotation).
	Shard    Shard
	Progress io.Writer
}

// Shard is part i of n (1 ≤ i ≤ n).
type Shard struct{ I, N int }

// ParseShard reads "i/n".
func ParseShard(s string) (Shard, error) {
	var sh Shard
	if _, err := fmt.Sscanf(s, "%d/%d", &sh.I, &sh.N); err != nil || fmt.Sprintf("%d/%d", sh.I, sh.N) != s || sh.I < 1 || sh.I > sh.N {
		return Shard{}, UsageError{fmt.Errorf("--shard %q: want i/n with 1 ≤ i ≤ n (1/3, 2/3, 3/3)", s)}
	}
	return sh, nil
}

// index is the place in the one rotation of this shard's k-th run.
func (sh Shard) index(k int) int {
	if sh.N == 0 {
		return k
	}
	return sh.I - 1 + k*sh.N
}

// Soak runs tests back to back until the duration is spent: a run starts
// only if its time limit still fits. Invalid and unknown runs are kept whole.
func Soak(ctx context.Context, o SoakOptions) ([]reports.SoakRun, error) {
	if o.Duration <= 0 || o.TimeLimit <= 0 {
		return nil, UsageError{fmt.Errorf("--duration %v and --time-limit %v must be positive", o.Duration, o.TimeLimit)}
	}
	if o.TimeLimit > o.Duration {
		return nil, UsageError{fmt.Errorf("--time-limit %v is longer than --duration %v: no run would fit", o.TimeLimit, o.Duration)}
	}
	if len(o.Nemeses) == 0 {
		o.Nemeses = []string{"partition", "kill", "pause", "leader-kill", "all"}
	}
	if len(o.Workloads) == 0 {
		o.Workloads = []string{"register", "append"}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Seed == 0 {
		if o.Shard.N > 0 {
			return nil, UsageError{fmt.Errorf("--shard needs --seed, the same for every shard, so that their runs are disjoint")}
		}
		o.Seed = time.Now().UnixNano() % 1_000_000
	}
	// reject bad nemesis or workload names before the first run
	probe := func(nemesis, workload string) error {
		p := Options{Nodes: max(o.Nodes, 1), Nemesis: nemesis, Partition: "random", NemesisInterval: time.Second,
			Workload: workload, TimeLimit: time.Second, Concurrency: 1, Net: "proxy", CheckTimeout: time.Second}
		return p.Validate()
	}
	for _, n := range o.Nemeses {
		if err := probe(n, "register"); err != nil {
			return nil, err
		}
	}
	for _, w := range o.Workloads {
		if err := probe("none", w); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	var runs []reports.SoakRun
	for k := 0; ctx.Err() == nil && time.Since(start)+o.TimeLimit <= o.Duration; k++ {
		i := o.Shard.index(k)
		ro, bug := o.runOptions(i)
		t0 := time.Now()
		fmt.Fprintf(o.Progress, "soak run %d: %s seed %d\n", k+1, ro.Name(), ro.Seed)
		res, err := Run(ctx, ro)
		run := reports.SoakRun{Name: ro.Name(), Dir: res.Dir, Seed: ro.Seed, Nemesis: ro.Nemesis, Workload: ro.Workload, Bug: bug,
			Verdict: string(res.Verdict), Seconds: time.Since(t0).Seconds()}
		run.Power(res)
		if err != nil {
			run.Verdict, run.Error = "crashed", err.Error()
		}
		if res.Interrupted {
			run.Verdict = "unknown"
		}
		for _, a := range res.Anomalies {
			run.Anomalies = append(run.Anomalies, a.Kind+": "+a.Detail)
		}
		fmt.Fprintf(o.Progress, "soak run %d: %s (%s)\n", k+1, run.Verdict, run.Dir)
		runs = append(runs, run)
		if err := trim(runs, o.KeepBytes); err != nil {
			return runs, err
		}
	}
	return runs, nil
}

// runOptions are the options of run i of the rotation (every shard's runs
// are places in one rotation), and the bug switch it must catch, if any.
func (o SoakOptions) runOptions(i int) (Options, string) {
	ro := DefaultOptions()
	ro.Nodes, ro.Nemesis, ro.NemesisInterval = o.Nodes, o.Nemeses[i%len(o.Nemeses)], max(o.TimeLimit/6, time.Second)
	ro.Workload, ro.TimeLimit, ro.Seed, ro.Store = o.Workloads[(i/len(o.Nemeses))%len(o.Workloads)], o.TimeLimit, o.Seed+int64(i), o.Store
	bug := ""
	if o.SelfCheck > 0 && i%o.SelfCheck == o.SelfCheck-1 {
		// each switch in turn, under its best nemesis (target/bugs)
		all := bugs.All()
		sw := all[(i/o.SelfCheck)%len(all)]
		bug, ro.Bugs, ro.Nemesis, ro.Nodes = sw.Name, sw.Name, strings.ReplaceAll(sw.Nemeses[0], "+", ","), sw.Nodes
	}
	return ro, bug
}

// trim removes the bulky files (write-ahead logs, log samples) of the
// oldest valid runs until this soak's runs fit the budget.
func trim(runs []reports.SoakRun, budget int64) error {
	if budget <= 0 {
		return nil
	}
	var total int64
	for _, r := range runs {
		n, err := dirSize(r.Dir)
		if err != nil {
			return err
		}
		total += n
	}
	for i := range runs {
		if total <= budget {
			return nil
		}
		r := &runs[i]
		if r.Verdict != "valid" || r.Bug != "" || r.Trimmed || r.Dir == "" {
			continue
		}
		before, err := dirSize(r.Dir)
		if err != nil {
			return err
		}
		if err := os.RemoveAll(filepath.Join(r.Dir, "nodes")); err != nil {
			return fmt.Errorf("trim %s: %w", r.Dir, err)
		}
		if err := os.Remove(layout.Layout{Dir: r.Dir}.Logs()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("trim %s: %w", r.Dir, err)
		}
		r.Trimmed = true
		after, err := dirSize(r.Dir)
		if err != nil {
			return err
		}
		total -= before - after
	}
	return nil
}

// dirSize is the bytes of the files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	if dir == "" {
		return 0, nil
	}
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measure %s: %w", dir, err)
	}
	return n, nil
}

// SoakExit is Jepsen's test-all order: 255 if any run crashed, else 2 if
// any is unknown, else 1 if any failed, else 0.
func SoakExit(runs []reports.SoakRun) int {
	code := 0
	for _, r := range runs {
		switch {
		case r.Verdict == "crashed":
			return 255
		case r.Verdict == "unknown":
			code = 2
		case !r.Passed() && code == 0:
			code = 1
		}
	}
	return code
}

// soakDirName names a soak's summary directory.
func soakDirName(t time.Time) string {
	return "soak-" + t.UTC().Format("20060102T150405")
}

// WriteSoakSummary writes summary.json and index.html for a soak under
// store/<soak-time>/ and returns the directory.
func WriteSoakSummary(store string, started time.Time, runs []reports.SoakRun) (string, error) {
	dir := filepath.Join(store, soakDirName(started))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	if err := reports.WriteJSON(filepath.Join(dir, "summary.json"), runs); err != nil {
		return "", err
	}
	f, err := os.Create(filepath.Join(dir, "index.html"))
	if err != nil {
		return "", fmt.Errorf("write soak summary: %w", err)
	}
	err = reports.RenderSoak(f, dir, runs)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("write soak summary %s: %w", f.Name(), err)
	}
	return dir, nil
}
