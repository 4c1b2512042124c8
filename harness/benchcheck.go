package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/paxtest/paxtest/checker"
	"github.com/paxtest/paxtest/checker/history"
	"github.com/paxtest/paxtest/harness/layout"
	"github.com/paxtest/paxtest/reports"
)

// BenchCheckOptions are the flags of `paxtest bench check`.
type BenchCheckOptions struct {
	Ops      []int  // history sizes, in operations
	From     string // a run directory whose client operations are repeated (empty: a generated history)
	Seed     int64
	Store    string
	Started  time.Time // names the bench's directory, store/bench-check-<time>
	Binary   string    // the paxtest binary to time (default: this one)
	Rounds   int       // timings of each side per size, alternating; the medians are compared (0: 3)
	Progress io.Writer
}

// BenchCheckRow is one size's measurement.
type BenchCheckRow struct {
	Ops          int     `json:"ops"`
	FileMB       float64 `json:"file_mb"`
	CheckSec     float64 `json:"check_seconds"`     // paxtest check, wall time, a process of its own
	PorcupineSec float64 `json:"porcupine_seconds"` // porcupine alone on the same operations: its call, timed in a process of its own
	Ratio        float64 `json:"ratio"`             // check / porcupine
	PeakRSSMB    float64 `json:"peak_rss_mb"`       // of the paxtest check process
	// of porcupine's process, which holds the loaded history, as the check does
	PorcupinePeakRSSMB float64 `json:"porcupine_peak_rss_mb"`
	RSSPerFile         float64 `json:"rss_per_file"`
	MicrosPerOp        float64 `json:"check_us_per_op"`
	// every round's times, in the order taken; the fields above are medians
	CheckRounds     []float64 `json:"check_rounds_seconds"`
	PorcupineRounds []float64 `json:"porcupine_rounds_seconds"`
	Verdict         string    `json:"verdict"`
	Dir             string    `json:"dir"`
}

// BenchCheck times `paxtest check` on register histories of each size
// against porcupine on the same operations, measured in the same
// invocation, and records the check's peak memory.
func BenchCheck(ctx context.Context, o BenchCheckOptions) ([]BenchCheckRow, error) {
	if len(o.Ops) == 0 {
		return nil, UsageError{fmt.Errorf("--ops: give at least one size")}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		o.Binary = exe
	}
	var base []checker.Op
	if o.From != "" {
		run, err := ReadRunOptions(o.From)
		if err != nil {
			return nil, err
		}
		if run.Workload != "register" {
			return nil, UsageError{fmt.Errorf("--from %s: a register run is needed, not %s", o.From, run.Workload)}
		}
		h, err := checker.LoadHistory(layout.Layout{Dir: o.From}.History(), "register")
		if err != nil {
			return nil, UsageError{err}
		}
		for _, op := range h.Ops {
			if !op.Final {
				base = append(base, op)
			}
		}
		if len(base) == 0 {
			return nil, UsageError{fmt.Errorf("--from %s: no client operation to repeat", o.From)}
		}
	}
	if o.Rounds < 0 {
		return nil, UsageError{fmt.Errorf("--rounds %d: the timings per side are a positive number", o.Rounds)}
	}
	dir := benchDir(o.Store, "check", o.Started)
	var rows []BenchCheckRow
	for _, n := range o.Ops {
		if n < 1 {
			return nil, UsageError{fmt.Errorf("--ops %d: a size is a positive number of operations", n)}
		}
		if ctx.Err() != nil {
			return rows, ctx.Err()
		}
		var ops []checker.Op
		if base != nil {
			ops = repeatOps(base, n)
		} else {
			ops = GenerateRegister(n, o.Seed)
		}
		run := filepath.Join(dir, fmt.Sprintf("ops-%d", n))
		fmt.Fprintf(o.Progress, "bench check: writing %d operations to %s\n", len(ops), run)
		size, err := writeHistory(run, ops)
		if err != nil {
			return rows, err
		}
		count := len(ops)
		ops = nil
		debug.FreeOSMemory() // an idle, small parent: both sides run in processes of their own
		row, err := timeBoth(ctx, o, count, run)
		if err != nil {
			return rows, err
		}
		row.FileMB = float64(size) / 1e6
		row.RSSPerFile = row.PeakRSSMB * 1e6 / float64(size)
		rows = append(rows, row)
	}
	return rows, nil
}

// timeBoth times porcupine and paxtest check on the same operations,
// alternating, o.Rounds times each, and compares the medians: one timing
// of either varies by more than the ratio's margin on a shared machine.
// Each side runs in a process of its own, started by an idle parent that
// holds no history: both start from a fresh heap, and neither shares the
// machine with a parent's garbage collection and memory release (a parent
// that had just run porcupine slowed the check after it by about a third).
func timeBoth(ctx context.Context, o BenchCheckOptions, ops int, run string) (BenchCheckRow, error) {
	rounds := o.Rounds
	if rounds == 0 {
		rounds = 3
	}
	row := BenchCheckRow{Ops: ops, Dir: run}
	var rss, prss []float64
	for i := 0; i < rounds; i++ {
		fmt.Fprintf(o.Progress, "bench check: round %d/%d: porcupine, then paxtest check, on %d operations\n", i+1, rounds, ops)
		pt, ppeak, err := timePorcupineProcess(ctx, o.Binary, run)
		if err != nil {
			return row, err
		}
		row.PorcupineRounds = append(row.PorcupineRounds, pt.Seconds())
		prss = append(prss, float64(ppeak)/1e6)
		ct, peak, res, err := timeCheck(ctx, o.Binary, run)
		if err != nil {
			return row, err
		}
		if row.Verdict != "" && res != row.Verdict {
			return row, fmt.Errorf("paxtest check %s said %s, then %s", run, row.Verdict, res)
		}
		row.Verdict = res
		row.CheckRounds = append(row.CheckRounds, ct.Seconds())
		rss = append(rss, float64(peak)/1e6)
	}
	row.CheckSec, row.PorcupineSec, row.PeakRSSMB = median(row.CheckRounds), median(row.PorcupineRounds), median(rss)
	row.PorcupinePeakRSSMB = median(prss)
	row.Ratio = row.CheckSec / row.PorcupineSec
	row.MicrosPerOp = row.CheckSec * 1e6 / float64(ops)
	return row, nil
}

// GenerateRegister builds a linearizable register history of n operations
// as the register workload makes them: keys of 100 operations, each
// worked on by three processes doing one operation at a time; get, put and
// cas (from the value the process last saw); 2% of operations
// indeterminate, half of those taking effect.
func GenerateRegister(n int, seed int64) []checker.Op {
	r := rand.New(rand.NewSource(seed))
	const perKey, procs = 100, 3
	var out []checker.Op
	values := 0
	for k := 0; len(out) < n; k++ {
		key := fmt.Sprintf("r%d-%d", k%1000, k/1000)
		start := int64(r.Intn(60e9)) // keys begin anywhere in a minute
		clock := [procs]int64{start, start, start}
		seen := [procs]string{}
		type pending struct {
			op     checker.Op
			at     int64 // linearization point
			effect bool
		}
		var ops []pending
		for i := 0; i < perKey && len(out)+len(ops) < n; i++ {
			p := r.Intn(procs)
			call := clock[p] + 1 + int64(r.Intn(2e6)) // strictly after its last completion
			ret := call + 1e6 + int64(r.Intn(4e6))
			clock[p] = ret
			op := checker.Op{Process: int32(k*procs + p), Key: key, Call: call, Return: ret, Client: fmt.Sprintf("p%d", k*procs+p), Seq: uint64(i + 1), Node: "n1", Type: history.OK}
			switch x := r.Intn(10); {
			case x < 4:
				op.F = "get"
			case x < 7 || seen[p] == "":
				values++
				op.F, op.Value = "put", fmt.Sprint(values)
			default:
				values++
				op.F, op.From, op.Value = "cas", seen[p], fmt.Sprint(values)
			}
			pd := pending{op: op, at: call + r.Int63n(ret-call), effect: true}
			if r.Intn(50) == 0 {
				pd.op.Type, pd.effect = history.Info, r.Intn(2) == 0
			}
			ops = append(ops, pd)
		}
		order := make([]int, len(ops))
		for i := range order {
			order[i] = i
		}
		sort.Slice(order, func(a, b int) bool { return ops[order[a]].at < ops[order[b]].at })
		var cur string
		found := false
		for _, i := range order {
			o := &ops[i]
			p := o.op.Process % procs
			switch o.op.F {
			case "get":
				o.op.Found, o.op.Value = found, cur
				if o.op.Type == history.OK && found {
					seen[p] = cur
				}
			case "put":
				if o.effect {
					cur, found = o.op.Value, true
				}
			case "cas":
				match := found && cur == o.op.From
				if o.op.Type == history.OK && !match {
					o.op.Type, o.op.Error = history.Fail, checker.ErrCASMismatch
				} else if o.effect && match {
					cur = o.op.Value
				}
			}
		}
		for _, o := range ops {
			out = append(out, o.op)
		}
	}
	return out
}

// repeatOps repeats a run's operations with keys renamed until n.
func repeatOps(base []checker.Op, n int) []checker.Op {
	out := make([]checker.Op, 0, n)
	// the base's processes, numbered densely: each repetition has its own
	dense := map[int32]int32{}
	for _, op := range base {
		if _, ok := dense[op.Process]; !ok {
			dense[op.Process] = int32(len(dense))
		}
	}
	for rep := 0; len(out) < n; rep++ {
		for _, op := range base {
			if len(out) == n {
				break
			}
			op.Key = fmt.Sprintf("%s#%d", op.Key, rep)
			op.Process = int32(rep*len(dense)) + dense[op.Process]
			op.Client = fmt.Sprintf("%s#%d", op.Client, rep)
			out = append(out, op)
		}
	}
	return out
}

// writeHistory writes ops as a run directory (config.json, history.jsonl
// in time order) and returns the history's size.
func writeHistory(dir string, ops []checker.Op) (int64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	cfg := DefaultOptions()
	cfg.Nemesis, cfg.Source = "none", "bench check"
	if err := reports.WriteJSON(layout.Layout{Dir: dir}.Config(), cfg); err != nil {
		return 0, err
	}
	type ev struct {
		t   int64
		op  int
		end bool
	}
	evs := make([]ev, 0, 2*len(ops))
	for i, op := range ops {
		evs = append(evs, ev{op.Call, i, false})
		if op.Type != "" {
			evs = append(evs, ev{op.Return, i, true})
		}
	}
	sort.Slice(evs, func(a, b int) bool {
		if evs[a].t != evs[b].t {
			return evs[a].t < evs[b].t
		}
		return !evs[a].end && evs[b].end
	})
	f, err := os.OpenFile(layout.Layout{Dir: dir}.History(), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i, e := range evs {
		op := &ops[e.op]
		h := history.Event{Index: i, Time: e.t, Process: history.Process(op.Process), Type: history.Invoke, F: op.F, Key: op.Key,
			Client: op.Client, Seq: op.Seq}
		var v any
		switch op.F {
		case "put":
			v = op.Value
		case "cas":
			v = history.CAS{From: op.From, To: op.Value}
		}
		if e.end {
			h.Type, h.Node, h.Error = op.Type, op.Node, op.Error
			if op.F == "get" && op.Type == history.OK && op.Found {
				v = op.Value
			}
		}
		if h.Value, err = json.Marshal(v); err != nil {
			return 0, err
		}
		b, err := json.Marshal(h)
		if err != nil {
			return 0, err
		}
		if _, err := w.Write(append(b, '\n')); err != nil {
			return 0, err
		}
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	// on disk before the first timing: the kernel's writeback of hundreds
	// of megabytes would otherwise share the machine with the first round
	if err := f.Sync(); err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), f.Close()
}

// porcupine's own way: an input and an output struct, the model
// partitioned by key, every partition checked by porcupine itself.
type pIn struct {
	key, f, v, from string
}
type pOut struct {
	unknown, mismatch, found bool
	v                        string
}
type pState struct {
	found bool
	v     string
}

// TimePorcupine loads a run directory's register history (not timed),
// then times porcupine alone on its operations: bench check's baseline,
// run in a process of its own (`paxtest bench porcupine`) so that, like
// the check, it starts from a fresh heap and faults in what it allocates.
func TimePorcupine(dir string) (time.Duration, error) {
	h, err := checker.LoadHistory(layout.Layout{Dir: dir}.History(), "register")
	if err != nil {
		return 0, UsageError{err}
	}
	runtime.GC() // the load's garbage is not porcupine's to collect
	return timePorcupine(h.Ops), nil
}

func timePorcupine(ops []checker.Op) time.Duration {
	model := porcupine.Model{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			by := map[string][]porcupine.Operation{}
			var keys []string
			for _, op := range h {
				k := op.Input.(pIn).key
				if _, ok := by[k]; !ok {
					keys = append(keys, k)
				}
				by[k] = append(by[k], op)
			}
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, by[k])
			}
			return out
		},
		Init: func() interface{} { return pState{} },
		Step: func(state, input, output interface{}) (bool, interface{}) {
			s, in, out := state.(pState), input.(pIn), output.(pOut)
			switch in.f {
			case "get":
				return out.unknown || (out.found == s.found && out.v == s.v), s
			case "put":
				return true, pState{true, in.v}
			default:
				match := s.found && s.v == in.from
				switch {
				case out.mismatch:
					return !match, s
				case match:
					return true, pState{true, in.v}
				}
				return out.unknown, s
			}
		},
		Hash: func(state interface{}) uint64 {
			s := state.(pState)
			h := fnv.New64a()
			h.Write([]byte(s.v))
			return h.Sum64()
		},
		Equal: func(a, b interface{}) bool { return a.(pState) == b.(pState) },
	}
	in := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		if op.Type == history.Fail && op.F != "cas" {
			continue
		}
		out := pOut{unknown: op.Indeterminate(), mismatch: op.Type == history.Fail, found: op.Found, v: op.Value}
		ret := op.Return
		if op.Indeterminate() {
			ret = 1 << 62
		}
		in = append(in, porcupine.Operation{ClientId: int(op.Process), Input: pIn{op.Key, op.F, op.Value, op.From}, Call: op.Call, Output: out, Return: ret})
	}
	start := time.Now()
	porcupine.CheckOperations(model, in)
	return time.Since(start)
}

// peakRSSEnv names a file where a paxtest process writes its own peak RSS
// as it exits. A child's rusage cannot be used: on Linux it counts the
// parent's peak, whose memory the child shared until exec.
const peakRSSEnv = "PAXTEST_PEAK_RSS_FILE"

// ReportPeakRSS writes this process's peak RSS in bytes (VmHWM) to the file
// $PAXTEST_PEAK_RSS_FILE names, if it is set: bench check's measure.
func ReportPeakRSS() {
	path := os.Getenv(peakRSSEnv)
	if path == "" {
		return
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return // no /proc: bench check says it could not measure
	}
	for _, line := range strings.Split(string(b), "\n") {
		if kb, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB"))
			if n, err := strconv.ParseInt(kb, 10, 64); err == nil {
				_ = os.WriteFile(path, []byte(strconv.FormatInt(n*1024, 10)), 0o644) // unreadable later: bench check says so
			}
		}
	}
}

// timePorcupineProcess runs `paxtest bench porcupine` on dir and returns
// porcupine's time, as the process measured it, and the process's peak RSS.
func timePorcupineProcess(ctx context.Context, bin, dir string) (time.Duration, int64, error) {
	cmd := exec.CommandContext(ctx, bin, "bench", "porcupine", dir)
	peak := filepath.Join(dir, "porcupine-peak-rss")
	cmd.Env = append(os.Environ(), peakRSSEnv+"="+peak)
	var out, errs strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errs
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("paxtest bench porcupine %s: %w\n%s", dir, err, errs.String())
	}
	secs, err := strconv.ParseFloat(strings.TrimSpace(out.String()), 64)
	if err != nil {
		return 0, 0, fmt.Errorf("paxtest bench porcupine %s printed %q, not seconds: %w", dir, out.String(), err)
	}
	rss, err := readPeakRSS(peak)
	return time.Duration(secs * float64(time.Second)), rss, err
}

// readPeakRSS reads what ReportPeakRSS wrote.
func readPeakRSS(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("%s: a paxtest process did not report its peak RSS (it needs /proc): %w", path, err)
	}
	rss, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("peak RSS in %s: %w", path, err)
	}
	return rss, nil
}

// timeCheck runs `paxtest check` on dir as a process of its own and
// returns its wall time, peak RSS and verdict.
func timeCheck(ctx context.Context, bin, dir string) (time.Duration, int64, string, error) {
	cmd := exec.CommandContext(ctx, bin, "check", "--checkers", "linearizable,stats", dir)
	peak := filepath.Join(dir, "peak-rss")
	cmd.Env = append(os.Environ(), peakRSSEnv+"="+peak)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 2 {
			return 0, 0, "", fmt.Errorf("paxtest check %s: %v\n%s", dir, err, out.String())
		}
	}
	rss, err := readPeakRSS(peak)
	if err != nil {
		return 0, 0, "", err
	}
	res, err := readResults(dir)
	if err != nil {
		return 0, 0, "", err
	}
	return elapsed, rss, string(res.Verdict), nil
}

// BenchCheckTable renders the rows as markdown.
func BenchCheckTable(rows []BenchCheckRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| operations | history | paxtest check | porcupine alone | ratio | peak RSS | RSS / history | porcupine's peak RSS | µs per op | verdict |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %d | %.0f MB | %.2f s | %.2f s | %.2f× | %.0f MB | %.2f× | %.0f MB | %.2f | %s |\n",
			r.Ops, r.FileMB, r.CheckSec, r.PorcupineSec, r.Ratio, r.PeakRSSMB, r.RSSPerFile, r.PorcupinePeakRSSMB, r.MicrosPerOp, r.Verdict)
	}
	b.WriteString("\npaxtest check (a process of its own: read, check, write results.json, index.html and the visualization) against porcupine alone on the same operations (a process of its own too, which loads the history untimed and times porcupine's call only), in the same invocation; each the median of rounds taken alternately (every round's times are in check.json).\n")
	return b.String()
}

// WriteBenchCheck writes check.md and check.json under store/bench-check-<time>/.
func WriteBenchCheck(store string, started time.Time, rows []BenchCheckRow, table string) (string, error) {
	return writeBench(store, "check", started, table, rows)
}
