package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/paxtest/paxtest/checker"
	"github.com/paxtest/paxtest/checker/history"
	"github.com/paxtest/paxtest/harness/layout"
)

// CompareOptions are the flags of `paxtest bench compare`.
type CompareOptions struct {
	DBs       []string // the systems; the first is the baseline of the ratios
	Nodes     []int
	Rounds    int           // runs of each system per size, interleaved (0: 3)
	TimeLimit time.Duration // of each run (0: 20 s); the leader is killed halfway
	Seed      int64
	Store     string
	Started   time.Time // names the bench's directory, store/bench-compare-<time>
	Progress  io.Writer
}

// CompareRow is one system on one cluster size: medians over the rounds,
// and ratios to the first system on the same size.
type CompareRow struct {
	DB        string  `json:"db"`
	Nodes     int     `json:"nodes"`
	OpsPerSec float64 `json:"ops_per_sec"` // acknowledged operations per second before the kill
	P50Ms     float64 `json:"p50_ms"`      // latency of the acknowledged operations before the kill
	P99Ms     float64 `json:"p99_ms"`
	// UnavailSec is how long after the leader's kill a write invoked after
	// it was first acknowledged.
	UnavailSec float64 `json:"unavailable_seconds"`
	Ratios     struct {
		OpsPerSec, P50, P99, Unavail float64
	} `json:"ratios"`
	Rounds   []CompareRound `json:"rounds"`
	Verdicts []string       `json:"verdicts"`
	Dirs     []string       `json:"dirs"`
}

// CompareRound is one run's figures.
type CompareRound struct {
	OpsPerSec  float64 `json:"ops_per_sec"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	UnavailSec float64 `json:"unavailable_seconds"` // -1: no write was acknowledged after the kill
}

// leaderKillScript kills the leader once, halfway through the run, and
// brings it back after a while; the rest of the run it waits.
func leaderKillScript(half time.Duration) string {
	return fmt.Sprintf("# bench compare: steady, then one leader kill\nsleep %s\nleader L\nkill L\nsleep 5s\nrestart L\nsleep 1h\n", half)
}

// Compare runs every system on every size Rounds times, interleaved (a
// round runs each system once before the next round), with the same
// workload, seed and schedule, and compares them to the first system.
func Compare(ctx context.Context, o CompareOptions) ([]CompareRow, string, error) {
	if len(o.DBs) < 2 || len(o.Nodes) == 0 {
		return nil, "", UsageError{fmt.Errorf("--db: give at least two systems, and --nodes at least one size")}
	}
	if o.Rounds <= 0 {
		o.Rounds = 3
	}
	if o.TimeLimit <= 0 {
		o.TimeLimit = 20 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	dir := filepath.Join(o.Store, "bench-compare-"+o.Started.UTC().Format("20060102T150405"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	script := filepath.Join(dir, "leader-kill.pax")
	if err := os.WriteFile(script, []byte(leaderKillScript(o.TimeLimit/2)), 0o644); err != nil {
		return nil, "", err
	}
	rows := map[compareKey]*CompareRow{}
	for r := 0; r < o.Rounds && ctx.Err() == nil; r++ {
		for _, n := range o.Nodes {
			for _, name := range o.DBs {
				row := rows[compareKey{name, n}]
				if row == nil {
					row = &CompareRow{DB: name, Nodes: n}
					rows[compareKey{name, n}] = row
				}
				fmt.Fprintf(o.Progress, "compare: round %d/%d: --db %s --nodes %d\n", r+1, o.Rounds, name, n)
				ro := DefaultOptions()
				ro.DB, ro.Nodes, ro.Nemesis, ro.Schedule = name, n, "none", script
				ro.TimeLimit, ro.Seed, ro.Store = o.TimeLimit, o.Seed+int64(r), filepath.Join(dir, "runs")
				res, err := Run(ctx, ro)
				if err != nil {
					return nil, dir, fmt.Errorf("compare --db %s --nodes %d: %w", name, n, err)
				}
				round, err := measureRound(res.Dir)
				if err != nil {
					return nil, dir, err
				}
				row.Rounds = append(row.Rounds, round)
				row.Verdicts = append(row.Verdicts, string(res.Verdict))
				row.Dirs = append(row.Dirs, res.Dir)
			}
		}
	}
	out := compareRows(o, rows)
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, dir, err
	}
	if err := os.WriteFile(filepath.Join(dir, "compare.json"), b, 0o644); err != nil {
		return nil, dir, err
	}
	return out, dir, os.WriteFile(filepath.Join(dir, "compare.md"), []byte(CompareTable(out)), 0o644)
}

// compareKey names a row: a system on a cluster size.
type compareKey struct {
	db    string
	nodes int
}

// compareRows takes each row's medians and its ratios to the first
// system on the same size, in the order of the options.
func compareRows(o CompareOptions, rows map[compareKey]*CompareRow) []CompareRow {
	var out []CompareRow
	for _, n := range o.Nodes {
		var base *CompareRow
		for _, name := range o.DBs {
			row := rows[compareKey{name, n}]
			if row == nil {
				continue
			}
			var ops, p50, p99, un []float64
			for _, r := range row.Rounds {
				ops, p50, p99 = append(ops, r.OpsPerSec), append(p50, r.P50Ms), append(p99, r.P99Ms)
				if r.UnavailSec >= 0 {
					un = append(un, r.UnavailSec)
				}
			}
			row.OpsPerSec, row.P50Ms, row.P99Ms, row.UnavailSec = median(ops), median(p50), median(p99), median(un)
			if base == nil {
				base = row
			}
			row.Ratios.OpsPerSec, row.Ratios.P50 = ratio(row.OpsPerSec, base.OpsPerSec), ratio(row.P50Ms, base.P50Ms)
			row.Ratios.P99, row.Ratios.Unavail = ratio(row.P99Ms, base.P99Ms), ratio(row.UnavailSec, base.UnavailSec)
			out = append(out, *row)
		}
	}
	return out
}

func ratio(x, base float64) float64 {
	if base == 0 {
		return 0
	}
	return x / base
}

// measureRound reads a run's history: throughput and latency of the
// operations acknowledged before the leader's kill, and how long after it
// a write invoked after it was first acknowledged.
func measureRound(dir string) (CompareRound, error) {
	cfg, err := ReadRunOptions(dir)
	if err != nil {
		return CompareRound{}, err
	}
	h, err := checker.LoadHistory(layout.Layout{Dir: dir}.History(), cfg.Workload)
	if err != nil {
		return CompareRound{}, err
	}
	kill := int64(-1)
	for _, e := range h.Nemesis {
		if e.F == "kill" && e.Type == history.Info {
			kill = e.Time
			break
		}
	}
	if kill < 0 {
		return CompareRound{}, fmt.Errorf("%s: the leader was never killed (no kill in the history)", dir)
	}
	var lat []float64
	first := int64(-1)
	back := int64(-1)
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Final || op.Type != history.OK {
			continue
		}
		if first < 0 || op.Call < first {
			first = op.Call
		}
		if op.Return < kill {
			lat = append(lat, float64(op.Return-op.Call)/1e6)
		}
		if op.Call >= kill && op.F != "get" && op.F != "read" && (back < 0 || op.Return < back) {
			back = op.Return
		}
	}
	r := CompareRound{UnavailSec: -1}
	if first >= 0 && kill > first {
		r.OpsPerSec = float64(len(lat)) / (float64(kill-first) / 1e9)
	}
	sort.Float64s(lat)
	r.P50Ms, r.P99Ms = percentile(lat, 0.50), percentile(lat, 0.99)
	if back >= 0 {
		r.UnavailSec = float64(back-kill) / 1e9
	}
	return r, nil
}

// percentile of sorted xs (nearest rank).
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	i := int(float64(len(xs))*p+0.5) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

// CompareTable is the comparison as a markdown table.
func CompareTable(rows []CompareRow) string {
	var b strings.Builder
	b.WriteString("| nodes | system | acked ops/s | p50 ms | p99 ms | unavailable after a leader kill | ops/s ratio | p50 ratio | p99 ratio | unavailability ratio | verdicts |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %d | %s | %.0f | %.1f | %.1f | %.2f s | %.2f× | %.2f× | %.2f× | %.2f× | %s |\n",
			r.Nodes, r.DB, r.OpsPerSec, r.P50Ms, r.P99Ms, r.UnavailSec, r.Ratios.OpsPerSec, r.Ratios.P50, r.Ratios.P99, r.Ratios.Unavail, strings.Join(r.Verdicts, " "))
	}
	return b.String()
}
