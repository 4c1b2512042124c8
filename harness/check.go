package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/paxtest/paxtest/checker"
	"github.com/paxtest/paxtest/checker/history"
	"github.com/paxtest/paxtest/harness/layout"
	"github.com/paxtest/paxtest/nemesis/fault"
	"github.com/paxtest/paxtest/reports"
)

// The checkers, by the names --checkers takes and results.json uses.
const (
	CheckLinearizable  = "linearizability" // register workload; also accepted as "linearizable"
	CheckAppend        = "append"          // append workload
	CheckLogAgreement  = "log-agreement"   // needs logs.jsonl
	CheckNodeInvariant = "node-invariants" // needs logs.jsonl
	CheckStats         = "stats"
	CheckLiveness      = "liveness" // nodes that did not serve again after the final heal
	CheckPower         = "power"    // what the run exercised: availability, recovery, kinds, faults
)

// Checkers lists every checker name.
func Checkers() []string {
	return []string{CheckLinearizable, CheckAppend, CheckLogAgreement, CheckNodeInvariant, CheckStats, CheckLiveness, CheckPower}
}

// CheckOptions are the flags of `paxtest check`.
type CheckOptions struct {
	Dir     string
	Timeout time.Duration // 0: the run's --check-timeout
	// Checkers to run (empty: every one that applies to the workload);
	// one that was asked for and cannot run makes the verdict unknown.
	Checkers []string
}

// Check re-runs the checkers on a run directory's files and rewrites its
// results.json, linearizability.html and index.html; the history is only
// read. A run recorded as interrupted stays marked so.
func Check(o CheckOptions) (reports.Results, error) {
	var prev reports.Results
	if old, err := os.ReadFile(layout.Layout{Dir: o.Dir}.Results()); err == nil {
		if err := json.Unmarshal(old, &prev); err != nil {
			return prev, UsageError{fmt.Errorf("%s is damaged: %w (move it away to check again)", layout.Layout{Dir: o.Dir}.Results(), err)}
		}
	}
	return check(o, prev.Interrupted)
}

// collectLess makes the garbage collector run only as the heap nears a
// bound proportional to a large history (gcHeadroom times its size) while
// the history loads, and at gcChecking percent after loaded is called,
// until restore puts the defaults back. A load keeps what it allocates:
// collecting on the default schedule (each time the heap doubles) scans
// the same growing history again and again, a third of a large check's
// time. The checkers after it make short-lived garbage key by key; every
// collection then scans the whole loaded history, so collecting less
// often costs less than the fresh memory it takes (gcChecking). The bound
// keeps memory within the goal of a few times the history. The settings are the process's: checks that overlap add their
// bounds, the collector stays off while any of them loads, and the last
// to end restores the defaults.
func collectLess(historyPath string) (loaded, restore func()) {
	st, err := os.Stat(historyPath)
	if err != nil || st.Size() < gcFrom {
		// the loader reports a missing file; a small history's garbage is
		// cheaper to collect than fresh memory is to fault in
		return func() {}, func() {}
	}
	bound := int64(gcHeadroom * float64(st.Size()))
	gcScope.Lock()
	defer gcScope.Unlock()
	if gcScope.checks == 0 {
		gcScope.oldPercent = debug.SetGCPercent(-1)
		gcScope.oldLimit = debug.SetMemoryLimit(math.MaxInt64)
	}
	gcScope.checks++
	gcScope.loading++
	gcScope.bound += bound
	debug.SetMemoryLimit(gcScope.bound)
	debug.SetGCPercent(-1)
	var once sync.Once
	done := func() { // under gcScope's lock
		once.Do(func() {
			gcScope.loading--
			if gcScope.loading == 0 {
				debug.SetGCPercent(gcChecking)
			}
		})
	}
	return func() {
			gcScope.Lock()
			defer gcScope.Unlock()
			done()
		}, func() {
			gcScope.Lock()
			defer gcScope.Unlock()
			done()
			gcScope.checks--
			gcScope.bound -= bound
			if gcScope.checks > 0 {
				debug.SetMemoryLimit(gcScope.bound)
				return
			}
			debug.SetGCPercent(gcScope.oldPercent)
			debug.SetMemoryLimit(gcScope.oldLimit)
		}
}

// gcScope is what collectLess changed and what it must restore.
var gcScope struct {
	sync.Mutex
	checks     int
	loading    int
	bound      int64
	oldPercent int
	oldLimit   int64
}

const (
	gcHeadroom = 2.5      // times the history's size
	gcFrom     = 64 << 20 // bytes of history: smaller ones keep the default
	gcChecking = 100      // percent, once loaded: at 1 M operations 1.35 s and 560 MB, against 1.6 s and 430 MB at 50 and 1.3 s and 645 MB at 200
)

// everyChecker is every checker that applies to the workload.
func everyChecker(workload string) []string {
	own := CheckLinearizable
	if workload == "append" {
		own = CheckAppend
	}
	return []string{own, CheckLogAgreement, CheckNodeInvariant, CheckStats, CheckLiveness, CheckPower}
}

// wanted resolves --checkers against the workload: every checker that
// applies when none is named.
func wanted(names []string, workload string) ([]string, error) {
	own := CheckLinearizable
	if workload == "append" {
		own = CheckAppend
	}
	if len(names) == 0 {
		return everyChecker(workload), nil
	}
	var out []string
	for _, n := range names {
		if n == "linearizable" {
			n = CheckLinearizable
		}
		switch {
		case !slices.Contains(Checkers(), n):
			return nil, fmt.Errorf("--checkers: unknown checker %q (accepted: linearizable, %s)", n, strings.Join(Checkers(), ", "))
		case (n == CheckLinearizable || n == CheckAppend) && n != own:
			return nil, fmt.Errorf("--checkers: %s does not apply to the %s workload (use %s)", n, workload, own)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func check(o CheckOptions, interrupted bool) (reports.Results, error) {
	lay := layout.Layout{Dir: o.Dir}
	loaded, restore := collectLess(lay.History())
	defer restore()
	res := reports.Results{Dir: o.Dir, Interrupted: interrupted}
	run, cfgBytes, err := readRunConfig(lay, o.Dir)
	if err != nil {
		return res, err
	}
	res.Config, res.LeftOut = cfgBytes, run.LeftOut
	asked, notRun := applicable(o.Checkers, run)
	names, err := wanted(asked, run.Workload)
	if err != nil {
		return res, UsageError{err}
	}
	h, err := checker.LoadHistory(lay.History(), run.Workload)
	if err != nil {
		if pe := new(history.ParseError); errors.As(err, &pe) {
			return res, UsageError{err}
		}
		return res, err
	}
	res.Torn = h.Torn
	loaded()
	figures := make(chan reports.Results, 1) // read-only over h: computed while the checkers run
	go func() { figures <- summarize(h, run) }()
	logs, haveLogs, err := readLogs(lay)
	if err != nil {
		return res, err
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = run.CheckTimeout
	}
	j := judge{lay: lay, workload: run.Workload, h: h, logs: logs, haveLogs: haveLogs, timeout: timeout}
	if res.Checkers, err = j.run(names); err != nil {
		return res, err
	}
	f := <-figures
	if slices.Contains(names, CheckPower) {
		res.Checkers[CheckPower] = checker.JudgePower(h, f.Availability, run.floor())
	}
	res.NotRun = map[string]string{}
	for _, n := range Checkers() {
		if !slices.Contains(names, n) {
			res.NotRun[n] = notRun(n)
		}
	}
	if r, ok := historyResult(h); ok {
		res.Checkers["history"] = r
	}
	res.Verdict, res.Anomalies = combine(res.Checkers)
	res.Ops, res.FinalReads, res.OpsPerSec, res.Seconds, res.Nemesis = f.Ops, f.FinalReads, f.OpsPerSec, f.Seconds, f.Nemesis
	res.LongestGap, res.Availability, res.Damage, res.TimeIsOrder = f.LongestGap, f.Availability, f.Damage, f.TimeIsOrder
	if b, err := os.ReadFile(lay.Replay()); err == nil {
		res.Replay = b
	} else if !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("read %s: %w", lay.Replay(), err)
	}
	if err := reports.WriteJSON(lay.Results(), res); err != nil {
		return res, err
	}
	return res, render(lay, res, h, logs)
}

// combine is the run's verdict from its checkers' (an invalid from any
// stands; the power floor can only make a valid unknown) and every
// anomaly they found.
func combine(results map[string]checker.Result) (checker.Verdict, []checker.Anomaly) {
	anomalies := []checker.Anomaly{}
	var verdicts []checker.Verdict
	for _, n := range append(Checkers(), "history") {
		if c, ok := results[n]; ok {
			verdicts = append(verdicts, c.Verdict)
			anomalies = append(anomalies, c.Anomalies...)
		}
	}
	return checker.Combine(verdicts...), anomalies
}

// summarize computes the run's figures for results.json: operations,
// rates, faults, availability and the damage taken.
func summarize(h *checker.History, run Options) reports.Results {
	var f reports.Results
	f.Ops, f.FinalReads, f.OpsPerSec, f.Seconds, f.Nemesis = reports.Summarize(h)
	f.Damage = damage(h)
	if run.Format != "" {
		// an import's times are its events' positions: no rate, no gap
		f.OpsPerSec, f.Seconds, f.TimeIsOrder = 0, 0, true
		return f
	}
	if a, ok := checker.MeasureAvailability(h, run.floor().Cluster); ok {
		f.Availability, f.LongestGap = &a, a.LongestGap.Seconds()
	}
	return f
}

// applicable is the checkers to run when --checkers names none (those
// that apply to what the run has, less the power floor if the run turned
// it off), and why a checker was not run.
func applicable(asked []string, run Options) ([]string, func(name string) string) {
	names, why := applicableTo(asked, run)
	if len(asked) > 0 || !run.NoPowerFloor {
		return names, why
	}
	if names == nil {
		names = everyChecker(run.Workload)
	}
	return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == CheckPower }), func(n string) string {
		if n == CheckPower {
			return "turned off (--no-power-floor): the verdict rests on the other checkers alone"
		}
		return why(n)
	}
}

// applicableTo is applicable before the power floor's switch.
func applicableTo(asked []string, run Options) ([]string, func(name string) string) {
	notAsked := func(string) string { return "not asked for (--checkers)" }
	hist := strings.Split(historyCheckers(run.Workload), ",")
	switch {
	case len(asked) > 0:
		return asked, notAsked
	case run.Format != "":
		// an import has no nodes' logs, and its times are its events'
		// order: the history's own checker, and whether it stopped serving
		return []string{hist[0], CheckLiveness}, func(n string) string {
			if n == CheckPower {
				return "does not apply: an imported history's times are its events' order, so its availability cannot be measured"
			}
			return notAsked(n)
		}
	case run.NoLogs:
		return hist, func(string) string {
			return fmt.Sprintf("does not apply: --db %s serves no committed log (the run has no logs.jsonl)", run.DB)
		}
	case run.NoInvariants:
		return append(hist, CheckLogAgreement), func(n string) string {
			if n == CheckNodeInvariant {
				return fmt.Sprintf("does not apply: --db %s's nodes report no invariants of their own", run.DB)
			}
			return notAsked(n)
		}
	}
	return nil, notAsked
}

// damage lists the corrupt faults of a run, the nodes that then refused to
// start and the damage taken back, from the nemesis events' ops.
func damage(h *checker.History) []string {
	var out []string
	for _, e := range h.Nemesis {
		if e.F != string(fault.Corrupt) && e.F != string(fault.Restart) && e.F != string(fault.Repair) {
			continue
		}
		var op fault.Op
		if json.Unmarshal(e.Value, &op) != nil {
			continue // an event of another writer: its detail is in the report
		}
		if op.F == fault.Corrupt || op.F == fault.Repair || len(op.Stopped) > 0 {
			out = append(out, op.Describe())
		}
	}
	return out
}

// readRunConfig reads the run's config.json.
func readRunConfig(lay layout.Layout, dir string) (Options, []byte, error) {
	var run Options
	b, err := os.ReadFile(lay.Config())
	if err != nil {
		return run, nil, UsageError{fmt.Errorf("%s: %w (is %s a paxtest run directory?)", lay.Config(), err, dir)}
	}
	if err := json.Unmarshal(b, &run); err != nil {
		return run, nil, UsageError{fmt.Errorf("%s is damaged: %w", lay.Config(), err)}
	}
	if run.Workload == "" {
		return run, nil, UsageError{fmt.Errorf("%s names no workload (register or append)", lay.Config())}
	}
	return run, b, nil
}

// readLogs reads the nodes' log samples, if the run has them.
func readLogs(lay layout.Layout) ([]checker.LogSample, bool, error) {
	if _, err := os.Stat(lay.Logs()); errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	logs, err := checker.ReadLogs(lay.Logs())
	if err != nil {
		return nil, false, UsageError{err}
	}
	return logs, true, nil
}

// judge runs the checkers on one run's inputs.
type judge struct {
	lay      layout.Layout
	workload string
	h        *checker.History
	logs     []checker.LogSample
	haveLogs bool
	timeout  time.Duration
}

func (j judge) run(names []string) (map[string]checker.Result, error) {
	out := map[string]checker.Result{}
	for _, n := range names {
		switch n {
		case CheckLinearizable:
			lin := checker.CheckLinearizable(j.h, j.timeout)
			out[n] = lin.Result
			if err := writeVisualization(j.lay, lin, j.h); err != nil {
				return out, err
			}
		case CheckAppend:
			out[n] = checker.CheckAppend(j.h)
		case CheckLogAgreement, CheckNodeInvariant:
			switch {
			case !j.haveLogs:
				out[n] = checker.Result{Verdict: checker.Unknown,
					Detail: "no logs.jsonl in the run directory: the nodes' logs cannot be checked (to judge the history alone: --checkers " + historyCheckers(j.workload) + ")"}
			case n == CheckLogAgreement:
				out[n] = checker.CheckLogAgreement(j.h, j.logs)
			default:
				out[n] = checker.CheckNodeInvariants(j.logs)
			}
		case CheckStats:
			out[n] = checker.CheckStats(j.h)
		case CheckLiveness:
			out[n] = checker.CheckLiveness(j.h)
		}
	}
	return out, nil
}

// historyResult says what the history itself tells: nothing to check, or
// a torn last line.
func historyResult(h *checker.History) (checker.Result, bool) {
	var r checker.Result
	if len(h.Ops) == 0 {
		r = checker.Result{Verdict: checker.Unknown, Detail: "the history holds no client operation: nothing was checked"}
	}
	if h.Torn != nil {
		if r.Verdict == "" {
			r.Verdict = checker.Valid
		}
		r.Detail = fmt.Sprintf("the last line (%d, %d bytes at offset %d) was torn: the run was killed while writing it; the rest was checked", h.Torn.Line, h.Torn.Bytes, h.Torn.Offset)
	}
	return r, r.Verdict != ""
}

// historyCheckers are the checkers that need the history alone.
func historyCheckers(workload string) string {
	if workload == "append" {
		return "append,stats,liveness,power"
	}
	return "linearizable,stats,liveness,power"
}

// writeVisualization writes linearizability.html (an index) and a page
// per shown key under linearizability/.
func writeVisualization(lay layout.Layout, lin checker.Linearizability, h *checker.History) error {
	var shades []checker.Shade
	for _, iv := range checker.FaultIntervals(h) {
		shades = append(shades, checker.Shade{Start: iv.Start, End: iv.End, Label: iv.Kind, Detail: iv.Detail})
	}
	f, err := os.Create(lay.Linearizability())
	if err != nil {
		return fmt.Errorf("write %s: %w", lay.Linearizability(), err)
	}
	verr := lin.Visualize(f, strings.TrimSuffix(lay.Linearizability(), ".html"), shades)
	if cerr := f.Close(); verr == nil {
		verr = cerr
	}
	if verr != nil {
		return fmt.Errorf("write %s: %w", lay.Linearizability(), verr)
	}
	return nil
}

// Formats lists the accepted --format values of `paxtest check`.
func Formats() []string { return []string{"paxtest", "jepsen"} }

// ImportOptions import a history another tool wrote.
type ImportOptions struct {
	File   string // Jepsen's history.edn, or knossos's test data
	Format string
	Store  string
}

// Import converts a Jepsen register history into a run directory of its
// own under store/jepsen-<name>/ (config.json and history.jsonl in paxtest's
// format, positions as times), so that it is checked, reported, served and
// re-checked as a run is. It returns the directory.
func Import(o ImportOptions) (string, error) {
	if o.Format != "jepsen" {
		return "", UsageError{fmt.Errorf("--format %q: accepted: %s", o.Format, strings.Join(Formats(), ", "))}
	}
	if st, err := os.Stat(o.File); err != nil || st.IsDir() {
		if err == nil {
			err = errors.New("a directory; give its history.edn")
		}
		return "", UsageError{fmt.Errorf("--format jepsen %s: %w", o.File, err)}
	}
	events, err := checker.ReadJepsen(o.File)
	if err != nil {
		return "", UsageError{err}
	}
	if _, err := checker.NewHistory(o.File, "register", events); err != nil {
		return "", UsageError{err}
	}
	name := "jepsen-" + strings.TrimSuffix(filepath.Base(o.File), filepath.Ext(o.File))
	lay, err := layout.NewRun(o.Store, name, time.Now())
	if err != nil {
		return "", err
	}
	cfg := Options{Workload: "register", CheckTimeout: DefaultOptions().CheckTimeout, Source: o.File, Format: o.Format}
	if err := reports.WriteJSON(lay.Config(), cfg); err != nil {
		return "", err
	}
	w, err := history.Create(lay.History())
	if err != nil {
		return "", err
	}
	for _, e := range events {
		if _, err := w.Append(e); err != nil {
			return "", errors.Join(err, w.Close())
		}
	}
	return lay.Dir, w.Close()
}
