package harness

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/paxtest/paxtest/checker"
	"github.com/paxtest/paxtest/nemesis"
	"github.com/paxtest/paxtest/reports"
)

// PowerOptions are the flags of `paxtest bench power`.
type PowerOptions struct {
	DBs       []string
	Nodes     []int
	Nemeses   []string // empty: every nemesis the cluster size fits, and all
	Runs      int
	TimeLimit time.Duration
	Seed      int64
	Store     string
	Progress  io.Writer
}

// PowerCell is one system × size × nemesis: what its runs served, how
// fast they recovered and how the power floor judged them.
type PowerCell struct {
	DB      string `json:"db"`
	Nodes   int    `json:"nodes"`
	Nemesis string `json:"nemesis"`
	Runs    int    `json:"runs"`
	// Verdicts counts valid, invalid, unknown and crashed runs.
	Verdicts map[string]int `json:"verdicts"`
	// per run: the share of the load served, of the time a majority was
	// up, the median and longest recovery, faults that did not recover
	Share         []float64 `json:"share"`
	ServableShare []float64 `json:"servable_share"`
	Recovery      []float64 `json:"recovery_median_s"`
	RecoveryMax   []float64 `json:"recovery_max_s"`
	Missed        int       `json:"did_not_recover"`
	// Shortfalls are what the floor said of the runs it judged unknown.
	Shortfalls []string `json:"shortfalls,omitempty"`
	Dirs       []string `json:"dirs"`
}

// BenchPower runs every cell Runs times: the measurement the power
// floor's defaults are chosen from (README, "What a run proves").
func BenchPower(ctx context.Context, o PowerOptions) ([]PowerCell, error) {
	if o.Runs < 1 || o.TimeLimit <= 0 {
		return nil, UsageError{fmt.Errorf("--runs %d and --time-limit %v must be positive", o.Runs, o.TimeLimit)}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	var cells []PowerCell
	for _, sut := range o.DBs {
		for _, n := range o.Nodes {
			for _, nem := range powerNemeses(o.Nemeses, n) {
				if ctx.Err() != nil {
					return cells, ctx.Err()
				}
				cells = append(cells, powerCell(ctx, o, sut, n, nem))
			}
		}
	}
	return cells, ctx.Err()
}

// powerNemeses are the nemeses a cell size runs: those asked for, or
// every kind that fits the size, each alone, and the general mix.
func powerNemeses(asked []string, nodes int) []string {
	if len(asked) > 0 {
		out := make([]string, len(asked))
		for i, a := range asked {
			out[i] = strings.ReplaceAll(a, "+", ",") // a combined nemesis on the command line
		}
		return out
	}
	var out []string
	for _, k := range nemesis.Kinds() {
		if k == "none" || k == "all" {
			continue
		}
		nems, err := nemesis.Parse(k, nemesis.ShapeRandom)
		if err != nil {
			continue
		}
		if kept, _, err := nemesis.Fit(k, nems, nodes); err == nil && len(kept) == len(nems) {
			out = append(out, k)
		}
	}
	return append(out, "all")
}

// powerCell runs one cell.
func powerCell(ctx context.Context, o PowerOptions, sut string, nodes int, nem string) PowerCell {
	c := PowerCell{DB: sut, Nodes: nodes, Nemesis: nem, Verdicts: map[string]int{}}
	for i := 0; i < o.Runs && ctx.Err() == nil; i++ {
		ro := DefaultOptions()
		ro.DB, ro.Nodes, ro.Nemesis, ro.TimeLimit, ro.Seed, ro.Store = sut, nodes, nem, o.TimeLimit, o.Seed+int64(i), o.Store
		fmt.Fprintf(o.Progress, "power: %s, %d nodes, %s, seed %d\n", sut, nodes, nem, ro.Seed)
		res, err := Run(ctx, ro)
		c.Runs++
		c.Dirs = append(c.Dirs, res.Dir)
		if err != nil {
			c.Verdicts["crashed"]++
			c.Shortfalls = append(c.Shortfalls, "crashed: "+err.Error())
			continue
		}
		c.Verdicts[string(res.Verdict)]++
		if p, ok := res.Checkers[CheckPower]; ok && p.Verdict == checker.Unknown {
			c.Shortfalls = append(c.Shortfalls, p.Detail)
		}
		if a := res.Availability; a != nil {
			rec := reports.Recoveries(a.Faults)
			c.Share, c.ServableShare = append(c.Share, a.Share), append(c.ServableShare, a.ServableShare)
			c.Recovery, c.RecoveryMax = append(c.Recovery, rec.Median), append(c.RecoveryMax, rec.Max)
			c.Missed += rec.Missed
		}
	}
	return c
}

// PowerTable renders the cells as markdown: medians over the runs, the
// lowest share of the servable time, and the verdicts.
func PowerTable(cells []PowerCell, o PowerOptions) string {
	var b strings.Builder
	b.WriteString("| db | nodes | nemesis | availability | of the time a majority was up (lowest) | recovery median | recovery max | did not recover | verdicts |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range cells {
		var verdicts []string
		for _, v := range []string{"valid", "unknown", "invalid", "crashed"} {
			if k := c.Verdicts[v]; k > 0 {
				verdicts = append(verdicts, fmt.Sprintf("%d %s", k, v))
			}
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %.0f%% | %.0f%% (%.0f%%) | %.2f s | %.2f s | %d | %s |\n", c.DB, c.Nodes, c.Nemesis,
			100*median(c.Share), 100*median(c.ServableShare), 100*minOf(c.ServableShare), median(c.Recovery), median(c.RecoveryMax),
			c.Missed, strings.Join(verdicts, ", "))
	}
	fmt.Fprintf(&b, "\n%d runs of %v per cell (seeds %d..%d); medians over the runs; the floor (--min-availability %.2f) applies to the time a majority was up.\n",
		o.Runs, o.TimeLimit, o.Seed, o.Seed+int64(o.Runs)-1, DefaultMinAvailability)
	return b.String()
}

func minOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return slices.Min(xs)
}

// WritePower writes power.md and power.json under store/bench-power-<time>/.
func WritePower(store string, started time.Time, cells []PowerCell, table string) (string, error) {
	return writeBench(store, "power", started, table, cells)
}
