package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/paxtest/paxtest/checker"
	"github.com/paxtest/paxtest/harness/disk"
	"github.com/paxtest/paxtest/nemesis"
	"github.com/paxtest/paxtest/reports"
	"github.com/paxtest/paxtest/target/bugs"
)

// DetectOptions are the flags of `paxtest bench detect`.
type DetectOptions struct {
	Runs      int
	TimeLimit time.Duration
	Bugs      []string // switch names, "none" for the correct build; empty: all and none
	Nemeses   []string // nemesis specs to try for every switch; empty: each switch's own
	Seed      int64
	Store     string
	// Best keeps only each switch's first (best) nemesis: the CI gate's slice.
	Best     bool
	Progress io.Writer
}

// correctBuildNemeses are what bench detect runs the correct build under:
// the harshest of the switches' nemeses, and the default mix.
var correctBuildNemeses = []string{"all", "figure8", "crash-quorum", "elect-lagging", "zombie-leader", "bridge-restart", "membership-split", "membership+partition+kill"}

// nemesesFor is what bench detect runs a switch (or "none") under, and on
// how many nodes: the switch's own table in target/bugs.
func nemesesFor(bug string) ([]string, int) {
	if bug == "none" {
		return correctBuildNemeses, 5
	}
	sw, _ := bugs.Lookup(bug)
	return sw.Nemeses, sw.Nodes
}

// DetectCell is one switch × nemesis of the matrix.
type DetectCell struct {
	Bug      string    `json:"bug"` // "none": the correct build
	Nemesis  string    `json:"nemesis"`
	Nodes    int       `json:"nodes"`
	Runs     int       `json:"runs"`
	Detected int       `json:"detected"` // invalid verdicts
	Unknown  int       `json:"unknown"`
	Crashed  int       `json:"crashed"`
	Seconds  []float64 `json:"detection_seconds"` // per detected run: run start to the first anomaly
	Median   float64   `json:"median_detection_seconds"`
	Seeds    []int64   `json:"seeds"`
	Kinds    []string  `json:"anomaly_kinds"`
	Dirs     []string  `json:"dirs"`
	// NotRun says why the cell ran nothing (its nemesis needs what this
	// machine lacks: the lazy disk needs root and FUSE).
	NotRun string `json:"not_run,omitempty"`
}

// FalseAlarms counts invalid verdicts on the correct build.
func (c DetectCell) FalseAlarms() int {
	if c.Bug == "none" {
		return c.Detected
	}
	return 0
}

// Detect runs the matrix: for every switch (and the correct build) and
// each of its nemeses, Runs runs of TimeLimit with distinct seeds.
func Detect(ctx context.Context, o DetectOptions) ([]DetectCell, error) {
	if o.Runs < 1 || o.TimeLimit <= 0 {
		return nil, UsageError{fmt.Errorf("--runs %d and --time-limit %v must be positive", o.Runs, o.TimeLimit)}
	}
	if len(o.Bugs) == 0 {
		o.Bugs = append(bugs.Names(), "none")
	}
	for _, b := range o.Bugs {
		if _, err := bugs.Parse(b); err != nil {
			return nil, UsageError{fmt.Errorf("--bugs: %w", err)}
		}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	var cells []DetectCell
	for _, b := range o.Bugs {
		nems, nodes := nemesesFor(b)
		if len(o.Nemeses) > 0 {
			nems = o.Nemeses
		}
		if len(nems) == 0 {
			// no live nemesis for it yet: say so in the table, run nothing
			cells = append(cells, DetectCell{Bug: b})
			continue
		}
		if o.Best {
			nems = nems[:1]
		}
		for _, n := range nems {
			n = strings.ReplaceAll(n, "+", ",") // a combined nemesis on the command line: membership+partition
			cellNodes := nodes
			if n == "membership-split" {
				cellNodes = 3 // it splits a three-member configuration
			}
			if why := cannotRun(n); why != "" {
				cells = append(cells, DetectCell{Bug: b, Nemesis: n, Nodes: cellNodes, NotRun: why})
				continue
			}
			cells = append(cells, detectCell(ctx, o, b, n, cellNodes))
		}
	}
	return cells, ctx.Err()
}

// cannotRun says why a nemesis cannot run on this machine ("" : it can).
func cannotRun(spec string) string {
	nems, err := nemesis.Parse(spec, nemesis.ShapeRandom)
	if err != nil {
		return "" // the run reports it
	}
	for _, n := range nems {
		if d, ok := n.(interface{ NeedsLazyDisk() bool }); ok && d.NeedsLazyDisk() {
			if err := disk.Available(); err != nil {
				return fmt.Sprintf("%s needs the lazy disk: %v", n.Name(), err)
			}
		}
	}
	return ""
}

// detectCell runs one switch × nemesis Runs times with distinct seeds.
func detectCell(ctx context.Context, o DetectOptions, b, n string, nodes int) DetectCell {
	c := DetectCell{Bug: b, Nemesis: n, Nodes: nodes}
	kinds := map[string]bool{}
	for i := 0; i < o.Runs && ctx.Err() == nil; i++ {
		seed := o.Seed + int64(i)
		ro := DefaultOptions()
		ro.Nodes, ro.Nemesis, ro.NemesisInterval, ro.TimeLimit, ro.Seed, ro.Store, ro.StopOnDivergence = nodes, n, 3*time.Second, o.TimeLimit, seed, o.Store, true
		if b != "none" {
			ro.Bugs = b
		}
		fmt.Fprintf(o.Progress, "detect: %s × %s seed %d\n", b, n, seed)
		res, err := Run(ctx, ro)
		c.Runs++
		c.Seeds = append(c.Seeds, seed)
		c.Dirs = append(c.Dirs, res.Dir)
		switch {
		case err != nil:
			c.Crashed++
			fmt.Fprintf(o.Progress, "detect: harness failed: %v\n", err)
		case res.Verdict == checker.Invalid:
			c.Detected++
			first := res.Anomalies[0].Time
			for _, a := range res.Anomalies {
				first = min(first, a.Time)
				kinds[a.Kind] = true
			}
			c.Seconds = append(c.Seconds, float64(first)/1e9)
		case res.Verdict == checker.Unknown:
			c.Unknown++
		}
	}
	for k := range kinds {
		c.Kinds = append(c.Kinds, k)
	}
	sort.Strings(c.Kinds)
	c.Median = median(c.Seconds)
	return c
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// DetectTable renders the matrix as markdown.
func DetectTable(cells []DetectCell, runs int, limit time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| switch | nemesis | nodes | detected | median time to detection | unknown | crashed | anomaly kinds | seeds |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range cells {
		if c.Nemesis == "" {
			fmt.Fprintf(&b, "| %s | — | | not run: no live nemesis exposes it yet (see the simulation tests) | | | | | |\n", c.Bug)
			continue
		}
		if c.NotRun != "" {
			fmt.Fprintf(&b, "| %s | %s | %d | not run: %s | | | | | |\n", c.Bug, c.Nemesis, c.Nodes, c.NotRun)
			continue
		}
		det := fmt.Sprintf("%d/%d", c.Detected, c.Runs)
		med := "—"
		if c.Detected > 0 {
			med = fmt.Sprintf("%.1f s", c.Median)
		}
		if c.Bug == "none" {
			det = fmt.Sprintf("%d false alarms /%d", c.Detected, c.Runs)
		}
		var seeds []string
		for _, s := range c.Seeds {
			seeds = append(seeds, fmt.Sprint(s))
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %d | %d | %s | %s |\n", c.Bug, c.Nemesis, c.Nodes, det, med, c.Unknown, c.Crashed,
			strings.Join(c.Kinds, ", "), strings.Join(seeds, " "))
	}
	fmt.Fprintf(&b, "\n%d runs of %v per cell.\n", runs, limit)
	return b.String()
}

// WriteDetect writes detect.md and detect.json under store/bench-detect-<time>/.
func WriteDetect(store string, started time.Time, cells []DetectCell, table string) (string, error) {
	return writeBench(store, "detect", started, table, cells)
}

// benchDir is where a bench started at started keeps its files.
func benchDir(store, name string, started time.Time) string {
	return filepath.Join(store, "bench-"+name+"-"+started.UTC().Format("20060102T150405"))
}

// writeBench writes <name>.md and <name>.json under store/bench-<name>-<time>/.
func writeBench(store, name string, started time.Time, table string, v any) (string, error) {
	dir := benchDir(store, name, started)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".md"), []byte(table), 0o644); err != nil {
		return "", fmt.Errorf("write %s.md: %w", name, err)
	}
	return dir, reports.WriteJSON(filepath.Join(dir, name+".json"), v)
}

// DetectGate reports what fails the CI gate: a switch never caught, or an
// alarm on the correct build.
func DetectGate(cells []DetectCell) []string {
	caught := map[string]bool{}
	var problems []string
	for _, c := range cells {
		if c.Bug == "none" {
			if c.Detected > 0 || c.Crashed > 0 {
				problems = append(problems, fmt.Sprintf("the correct build raised %d alarms (%d crashes) under %s", c.Detected, c.Crashed, c.Nemesis))
			}
			continue
		}
		if c.Nemesis == "" || c.NotRun != "" {
			continue // not run
		}
		caught[c.Bug] = caught[c.Bug] || c.Detected > 0
	}
	var names []string
	for b := range caught {
		names = append(names, b)
	}
	sort.Strings(names)
	for _, b := range names {
		if !caught[b] {
			problems = append(problems, fmt.Sprintf("bug switch %s was not caught by any nemesis", b))
		}
	}
	return problems
}
