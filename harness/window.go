package harness

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/paxtest/paxtest/checker"
)

// WindowOptions are the flags of `paxtest bench window`.
type WindowOptions struct {
	Windows     []int // α values; the last is the baseline
	TimeLimit   time.Duration
	Nodes       int
	Concurrency int // clients (default 10); α only binds once more commands are in flight than it allows
	Rounds      int // rounds of one run per α, interleaved; each α reports its median
	Seed        int64
	Store       string
	Progress    io.Writer
}

// WindowRow is one α's measurement.
type WindowRow struct {
	Window    int             `json:"window"`
	OpsPerSec float64         `json:"acked_ops_per_sec"` // median over the rounds
	Runs      []float64       `json:"acked_ops_per_sec_per_round"`
	Ratio     float64         `json:"ratio_to_baseline"`
	Verdict   checker.Verdict `json:"verdict"` // valid only if every round was
	Dirs      []string        `json:"dirs"`
}

// BenchWindow measures acknowledged ops/s for each α under the same
// workload (register, 10 clients, no faults, one seed), one run at a time,
// and reports each as a ratio to the last α's, measured in the same
// invocation.
func BenchWindow(ctx context.Context, o WindowOptions) ([]WindowRow, error) {
	if len(o.Windows) == 0 || o.TimeLimit <= 0 {
		return nil, UsageError{fmt.Errorf("--windows and --time-limit must be given")}
	}
	for _, w := range o.Windows {
		if w < 1 {
			return nil, UsageError{fmt.Errorf("--windows: %d is not a positive window", w)}
		}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	o = o.withDefaults()
	rows := make([]WindowRow, len(o.Windows))
	// rounds interleave the α values, so that a drift of the machine over
	// the benchmark touches every α alike
	for round := 0; round < o.Rounds; round++ {
		for i, w := range o.Windows {
			ro := Options{Nodes: o.Nodes, Nemesis: "none", Partition: "random", NemesisInterval: time.Second, Workload: "register",
				TimeLimit: o.TimeLimit, Concurrency: o.Concurrency, Seed: o.Seed, Net: "proxy", Store: o.Store, CheckTimeout: 2 * time.Minute, Window: w}
			fmt.Fprintf(o.Progress, "bench window: round %d, α = %d\n", round+1, w)
			res, err := Run(ctx, ro)
			if err != nil {
				return nil, err
			}
			r := &rows[i]
			r.Window = w
			r.Runs = append(r.Runs, res.OpsPerSec)
			r.Dirs = append(r.Dirs, res.Dir)
			if r.Verdict == "" || r.Verdict == checker.Valid {
				r.Verdict = res.Verdict
			}
		}
	}
	for i := range rows {
		rows[i].OpsPerSec = median(rows[i].Runs)
	}
	base := rows[len(rows)-1].OpsPerSec
	for i := range rows {
		if base > 0 {
			rows[i].Ratio = rows[i].OpsPerSec / base
		}
	}
	return rows, nil
}

// WindowTable renders the rows as markdown.
func WindowTable(rows []WindowRow, o WindowOptions) string {
	o = o.withDefaults()
	var b strings.Builder
	base := rows[len(rows)-1].Window
	fmt.Fprintf(&b, "| α | acknowledged ops/s | ratio to α = %d | verdict |\n|---|---|---|---|\n", base)
	for _, r := range rows {
		fmt.Fprintf(&b, "| %d | %.0f | %.2f | %s |\n", r.Window, r.OpsPerSec, r.Ratio, r.Verdict)
	}
	fmt.Fprintf(&b, "\n%d nodes, register workload, %d clients, no faults, %v per run, seed %d; median of %d interleaved rounds.\n",
		o.Nodes, o.Concurrency, o.TimeLimit, o.Seed, o.Rounds)
	return b.String()
}

// WriteWindow writes window.md and window.json under store/bench-window-<time>/.
func WriteWindow(store string, started time.Time, rows []WindowRow, table string) (string, error) {
	return writeBench(store, "window", started, table, rows)
}

func (o WindowOptions) withDefaults() WindowOptions {
	if o.Concurrency <= 0 {
		o.Concurrency = 10
	}
	if o.Rounds <= 0 {
		o.Rounds = 1
	}
	return o
}
