package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/paxtest/paxtest/checker"
	"github.com/paxtest/paxtest/harness/mutate"
)

// MutantsOptions are the flags of `paxtest bench mutants`.
type MutantsOptions struct {
	Src       string        // the project's source tree (go.mod at its root)
	Budget    int           // simulation schedules per profile and mutant
	SimLimit  time.Duration // a mutant's simulation budget in wall time; past it: hang
	Runs      int           // live runs per unsafe mutant (stops at the first catch)
	TimeLimit time.Duration // each live run's time limit
	Seed      int64
	Only      string // a regexp over mutant ids: only these
	Limit     int    // at most this many mutants (after Only), spread evenly; 0: all
	Live      bool   // run the live phase
	// Classified is a mutants.json of an earlier bench whose simulation
	// classes are taken as they are (the live phase is run again).
	Classified string
	Jobs       int // simulations in parallel
	Store      string
	Progress   io.Writer
}

// Sim classes of a mutant.
const (
	ClassStillborn = "did-not-build"
	ClassUnsafe    = "unsafe"        // a safety invariant broke in the simulation
	ClassLiveness  = "liveness-only" // safe, but no progress after healing
	ClassCrash     = "crash"         // the core panicked
	ClassHang      = "hang"          // the simulation did not finish in time
	ClassSurvived  = "no-invariant-broken"
)

// MutantResult is one mutant's fate.
type MutantResult struct {
	mutate.Mutant
	Class     string    `json:"class"`
	Invariant string    `json:"invariant,omitempty"`
	SimDetail string    `json:"sim_detail,omitempty"`
	SimSec    float64   `json:"sim_seconds"`
	LiveRuns  int       `json:"live_runs,omitempty"`
	Caught    bool      `json:"caught,omitempty"`
	Detection float64   `json:"detection_seconds,omitempty"` // run start to the first anomaly, in the catching run
	Verdicts  []string  `json:"verdicts,omitempty"`
	Dirs      []string  `json:"dirs,omitempty"`
	Kinds     []string  `json:"anomaly_kinds,omitempty"`
	RunSecs   []float64 `json:"run_seconds,omitempty"`
}

// MutantsReport is the whole bench.
type MutantsReport struct {
	Generated int            `json:"generated"`
	Classes   map[string]int `json:"classes"`
	Unsafe    int            `json:"unsafe"`
	LiveTried int            `json:"live_tried"`
	Caught    int            `json:"caught"`
	Score     float64        `json:"mutation_score"` // caught / live tried
	Median    float64        `json:"median_detection_seconds"`
	Runs      int            `json:"runs_per_mutant"`
	TimeLimit string         `json:"time_limit"`
	Nemesis   string         `json:"nemesis"`
	Mutants   []MutantResult `json:"mutants"`
}

// mutatedFiles are the protocol core, the quorum arithmetic and the state
// machine, and the test each one's mutants are judged by.
var mutatedPackages = []struct {
	dir, test, budgetFlag, reportFlag string
	judgedIn                          string // the package whose test runs
}{
	{"target/paxos", "TestSimulationProfilesKeepEverySafetyInvariant", "-sim.budget", "-sim.report", "target/paxos"},
	{"target/quorum", "TestSimulationProfilesKeepEverySafetyInvariant", "-sim.budget", "-sim.report", "target/paxos"},
	{"target/kv", "TestStoreFollowsItsSpecificationUnderRetries", "-kv.budget", "-kv.report", "target/kv"},
}

// Mutants generates mutants of the core and the state machine, classifies
// each with the deterministic simulation, and runs the live harness with
// the default nemesis on every unsafe one.
func Mutants(ctx context.Context, o MutantsOptions) (MutantsReport, error) {
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Budget < 1 || o.Runs < 1 || o.TimeLimit <= 0 || o.SimLimit <= 0 {
		return MutantsReport{}, UsageError{fmt.Errorf("--budget %d, --runs %d, --time-limit %v and --sim-limit %v must be positive", o.Budget, o.Runs, o.TimeLimit, o.SimLimit)}
	}
	if o.Jobs < 1 {
		o.Jobs = runtime.NumCPU()
	}
	src, err := mutantSource(o.Src)
	if err != nil {
		return MutantsReport{}, err
	}
	ms, err := generateMutants(src)
	if err != nil {
		return MutantsReport{}, err
	}
	ms, err = selectMutants(ms, o.Only, o.Limit)
	if err != nil {
		return MutantsReport{}, err
	}
	work, err := os.MkdirTemp("", "paxtest-mutants-")
	if err != nil {
		return MutantsReport{}, err
	}
	defer os.RemoveAll(work)
	// build from a copy, so that editing the tree during the bench changes nothing
	if src, err = copyTree(src, filepath.Join(work, "src")); err != nil {
		return MutantsReport{}, fmt.Errorf("copy the source tree: %w", err)
	}

	rep := MutantsReport{Generated: len(ms), Classes: map[string]int{}, Runs: o.Runs, TimeLimit: o.TimeLimit.String(), Nemesis: DefaultOptions().Nemesis}
	rep.Mutants = make([]MutantResult, len(ms))
	if o.Classified != "" {
		if err := reuseClasses(o.Classified, ms, rep.Mutants); err != nil {
			return rep, err
		}
		ms = nil // nothing left to simulate
	}
	if err := simulateAll(ctx, src, work, ms, rep.Mutants, o); err != nil {
		return rep, err
	}
	for _, r := range rep.Mutants {
		rep.Classes[r.Class]++
	}
	rep.Unsafe = rep.Classes[ClassUnsafe]
	if o.Live {
		if err := liveAll(ctx, src, work, &rep, o); err != nil {
			return rep, err
		}
	}
	var secs []float64
	for _, r := range rep.Mutants {
		if r.Caught {
			secs = append(secs, r.Detection)
		}
	}
	rep.Median = median(secs)
	if rep.LiveTried > 0 {
		rep.Score = float64(rep.Caught) / float64(rep.LiveTried)
	}
	return rep, ctx.Err()
}

// mutantSource checks that dir is paxtest's source tree and that go can
// build it.
func mutantSource(dir string) (string, error) {
	src, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if b, err := os.ReadFile(filepath.Join(src, "go.mod")); err != nil || !strings.Contains(string(b), "module github.com/paxtest/paxtest") {
		return "", UsageError{fmt.Errorf("--src %s is not paxtest's source tree (no go.mod of github.com/paxtest/paxtest): mutants are built from source", dir)}
	}
	if _, err := exec.LookPath("go"); err != nil {
		return "", UsageError{fmt.Errorf("bench mutants builds every mutant and needs the go command on PATH: %w", err)}
	}
	return src, nil
}

// simulateAll classifies every mutant of ms into out, o.Jobs at a time.
func simulateAll(ctx context.Context, src, work string, ms []mutate.Mutant, out []MutantResult, o MutantsOptions) error {
	fmt.Fprintf(o.Progress, "mutants: %d generated; simulating %d with %d schedules per profile, %d at a time\n", len(out), len(ms), o.Budget, o.Jobs)
	var wg sync.WaitGroup
	next := make(chan int)
	var mu sync.Mutex
	var simErr error
	done := 0
	for j := 0; j < o.Jobs; j++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r, err := simulateMutant(ctx, src, work, ms[i], o)
				mu.Lock()
				if err != nil && simErr == nil {
					simErr = err
				}
				out[i] = r
				done++
				fmt.Fprintf(o.Progress, "mutants: sim %d/%d %s: %s %s\n", done, len(ms), r.ID, r.Class, r.Invariant)
				mu.Unlock()
			}
		}()
	}
	for i := range ms {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if simErr != nil {
		return simErr
	}
	return ctx.Err()
}

// liveAll runs the live harness on every unsafe mutant.
func liveAll(ctx context.Context, src, work string, rep *MutantsReport, o MutantsOptions) error {
	for i := range rep.Mutants {
		r := &rep.Mutants[i]
		if r.Class != ClassUnsafe || ctx.Err() != nil {
			continue
		}
		if err := liveMutant(ctx, src, work, r, o); err != nil {
			return err
		}
		rep.LiveTried++
		if r.Caught {
			rep.Caught++
		}
		fmt.Fprintf(o.Progress, "mutants: live %s: caught=%v after %d runs (%v)\n", r.ID, r.Caught, r.LiveRuns, r.Verdicts)
	}
	return nil
}

// reuseClasses fills out with the simulation classes of an earlier bench;
// every mutant generated now must be in it (same source).
func reuseClasses(path string, ms []mutate.Mutant, out []MutantResult) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return UsageError{fmt.Errorf("--classified: %w", err)}
	}
	var old MutantsReport
	if err := json.Unmarshal(b, &old); err != nil {
		return UsageError{fmt.Errorf("--classified %s: %w", path, err)}
	}
	byID := map[string]MutantResult{}
	for _, r := range old.Mutants {
		byID[r.ID] = r
	}
	for i, m := range ms {
		r, ok := byID[m.ID]
		if !ok || r.Before != m.Before {
			return UsageError{fmt.Errorf("--classified %s has no mutant %s as generated now (the source changed): classify again", path, m.ID)}
		}
		out[i] = MutantResult{Mutant: m, Class: r.Class, Invariant: r.Invariant, SimDetail: r.SimDetail, SimSec: r.SimSec}
	}
	return nil
}

// generateMutants lists the mutants of every mutated package, ids relative
// to the source tree.
func generateMutants(src string) ([]mutate.Mutant, error) {
	var files []string
	for _, p := range mutatedPackages {
		fs, err := filepath.Glob(filepath.Join(src, p.dir, "*.go"))
		if err != nil {
			return nil, err
		}
		for _, f := range fs {
			if !strings.HasSuffix(f, "_test.go") {
				files = append(files, f)
			}
		}
	}
	var out []mutate.Mutant
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(src, f)
		ms, err := mutate.FromSource(filepath.ToSlash(rel), b)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}

// selectMutants keeps the ids matching only, then at most limit of them,
// spread evenly over the list.
func selectMutants(ms []mutate.Mutant, only string, limit int) ([]mutate.Mutant, error) {
	if only != "" {
		re, err := regexp.Compile(only)
		if err != nil {
			return nil, UsageError{fmt.Errorf("--only %q: %w", only, err)}
		}
		var kept []mutate.Mutant
		for _, m := range ms {
			if re.MatchString(m.ID) {
				kept = append(kept, m)
			}
		}
		ms = kept
	}
	if limit > 0 && len(ms) > limit {
		var kept []mutate.Mutant
		for i := 0; i < limit; i++ {
			kept = append(kept, ms[i*len(ms)/limit])
		}
		ms = kept
	}
	return ms, nil
}

// overlay writes the mutated file and an overlay file that puts it in place
// of the original.
func overlay(src, work string, m mutate.Mutant) (string, error) {
	dir, err := os.MkdirTemp(work, "m-")
	if err != nil {
		return "", err
	}
	file := filepath.Join(dir, filepath.Base(m.File))
	if err := os.WriteFile(file, m.Src, 0o644); err != nil {
		return "", err
	}
	ov, err := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(src, m.File): file}})
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "overlay.json")
	return path, os.WriteFile(path, ov, 0o644)
}

// simulateMutant builds the judging test with the mutant in place and runs
// it. An error means the bench itself cannot judge (the test did not run).
func simulateMutant(ctx context.Context, src, work string, m mutate.Mutant, o MutantsOptions) (MutantResult, error) {
	r := MutantResult{Mutant: m}
	started := time.Now()
	defer func() { r.SimSec = time.Since(started).Seconds() }()
	pkg := mutatedPackages[0]
	for _, p := range mutatedPackages {
		if strings.HasPrefix(m.File, p.dir+"/") {
			pkg = p
		}
	}
	ov, err := overlay(src, work, m)
	if err != nil {
		return r, err
	}
	dir := filepath.Dir(ov)
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "sim.test")
	build := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, "-overlay", ov, "./"+pkg.judgedIn)
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		r.Class, r.SimDetail = ClassStillborn, lastLine(string(out))
		return r, nil
	}
	report := filepath.Join(dir, "verdict.json")
	sctx, cancel := context.WithTimeout(ctx, o.SimLimit)
	defer cancel()
	// a mutant may allocate without bound: its address space is capped
	// (8 GiB), so that it crashes alone instead of taking the machine
	run := exec.CommandContext(sctx, "bash", "-c", `ulimit -v 8388608 && exec "$0" "$@"`,
		bin, "-test.run", "^"+pkg.test+"$", pkg.budgetFlag, fmt.Sprint(o.Budget), pkg.reportFlag, report)
	run.Dir = filepath.Join(src, pkg.judgedIn)
	out, runErr := run.CombinedOutput()
	var v struct {
		Invariant string `json:"invariant"`
		Detail    string `json:"detail"`
	}
	b, rerr := os.ReadFile(report)
	switch {
	case sctx.Err() != nil:
		r.Class, r.SimDetail = ClassHang, fmt.Sprintf("the simulation did not finish within %v", o.SimLimit)
	case rerr != nil && runErr == nil:
		return r, fmt.Errorf("mutant %s: %s ran no test %s and wrote no verdict: %s", m.ID, pkg.judgedIn, pkg.test, lastLine(string(out)))
	case rerr != nil:
		r.Class, r.SimDetail = ClassCrash, panicLine(string(out), runErr)
	case json.Unmarshal(b, &v) != nil:
		r.Class, r.SimDetail = ClassCrash, "unreadable verdict: "+string(b)
	case v.Invariant == "":
		r.Class = ClassSurvived
	case v.Invariant == "liveness":
		r.Class, r.Invariant, r.SimDetail = ClassLiveness, v.Invariant, v.Detail
	default:
		r.Class, r.Invariant, r.SimDetail = ClassUnsafe, v.Invariant, v.Detail
	}
	return r, nil
}

// copyTree copies the source tree (no .git, no store) to dst and returns it.
func copyTree(src, dst string) (string, error) {
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "store") {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	return dst, err
}

// liveMutant builds paxtest with the mutant in place and runs the live
// harness on it with the default nemesis, up to o.Runs runs, until one
// comes out invalid. The workloads alternate, register first.
func liveMutant(ctx context.Context, src, work string, r *MutantResult, o MutantsOptions) error {
	ov, err := overlay(src, work, r.Mutant)
	if err != nil {
		return err
	}
	bin := filepath.Join(filepath.Dir(ov), "paxtest")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "-overlay", ov, "./cmd/paxtest")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build paxtest with mutant %s: %v: %s", r.ID, err, lastLine(string(out)))
	}
	workloads := []string{"register", "append"}
	for i := 0; i < o.Runs && ctx.Err() == nil; i++ {
		ro := DefaultOptions()
		ro.Workload = workloads[i%len(workloads)]
		ro.TimeLimit, ro.Seed, ro.Binary, ro.StopOnDivergence = o.TimeLimit, o.Seed+int64(i), bin, true
		ro.Store = filepath.Join(o.Store, "mutants", sanitize(r.ID))
		started := time.Now()
		res, err := Run(ctx, ro)
		r.LiveRuns++
		r.RunSecs = append(r.RunSecs, time.Since(started).Seconds())
		r.Dirs = append(r.Dirs, res.Dir)
		if err != nil {
			if errors.As(err, new(UsageError)) {
				return err
			}
			r.Verdicts = append(r.Verdicts, "harness-error: "+err.Error())
			continue
		}
		r.Verdicts = append(r.Verdicts, string(res.Verdict))
		if res.Verdict == checker.Invalid && len(res.Anomalies) > 0 {
			r.Caught = true
			first := res.Anomalies[0].Time
			kinds := map[string]bool{}
			for _, a := range res.Anomalies {
				first = min(first, a.Time)
				kinds[a.Kind] = true
			}
			for k := range kinds {
				r.Kinds = append(r.Kinds, k)
			}
			sort.Strings(r.Kinds)
			r.Detection = float64(first) / 1e9
			return nil
		}
	}
	return nil
}

func sanitize(id string) string {
	return strings.NewReplacer("/", "_", ":", "_", "#", "_", "+", "p", ".go", "").Replace(id)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// panicLine is the first line of a panic in a test's output, or the error.
func panicLine(out string, err error) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "panic:") {
			return l
		}
	}
	if err != nil {
		return err.Error()
	}
	return "no verdict written"
}

// MutantsTable renders the report as markdown: the summary, then every
// unsafe mutant the live harness missed, with its diff.
func MutantsTable(rep MutantsReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| | mutants |\n|---|---|\n")
	fmt.Fprintf(&b, "| generated | %d |\n", rep.Generated)
	for _, c := range []string{ClassStillborn, ClassUnsafe, ClassLiveness, ClassCrash, ClassHang, ClassSurvived} {
		fmt.Fprintf(&b, "| simulation: %s | %d |\n", c, rep.Classes[c])
	}
	fmt.Fprintf(&b, "| live: tried (unsafe) | %d |\n", rep.LiveTried)
	fmt.Fprintf(&b, "| live: caught within %d runs of %s (--nemesis %s) | %d |\n", rep.Runs, rep.TimeLimit, rep.Nemesis, rep.Caught)
	if rep.LiveTried > 0 {
		fmt.Fprintf(&b, "| mutation score | %.0f %% |\n", 100*rep.Score)
		fmt.Fprintf(&b, "| median time to detection | %.1f s |\n", rep.Median)
	}
	var survivors []MutantResult
	for _, r := range rep.Mutants {
		if r.Class == ClassUnsafe && r.LiveRuns > 0 && !r.Caught {
			survivors = append(survivors, r)
		}
	}
	if len(survivors) > 0 {
		fmt.Fprintf(&b, "\nUnsafe mutants the live harness missed:\n\n")
		for _, r := range survivors {
			fmt.Fprintf(&b, "```diff\n%s```\nsimulation: %s (%s); live: %s\n\n", r.Diff(), r.Invariant, r.SimDetail, strings.Join(r.Verdicts, ", "))
		}
	}
	return b.String()
}

// WriteMutants writes mutants.md and mutants.json under store/bench-mutants-<time>/.
func WriteMutants(store string, started time.Time, rep MutantsReport, table string) (string, error) {
	return writeBench(store, "mutants", started, table, rep)
}
