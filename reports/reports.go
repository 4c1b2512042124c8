// Package reports renders a checked run: results.json (the verdict, each
// checker's result, anomalies with their evidence, operation counts,
// throughput and nemesis events) and the HTML pages. It renders to an
// io.Writer from data it is handed; it must not run checks or touch nodes.
package reports

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/paxtest/paxtest/checker"
	"github.com/paxtest/paxtest/checker/history"
)

// OpCounts counts client operations by outcome.
type OpCounts struct {
	OK    int `json:"ok"`
	Fail  int `json:"fail"`
	Info  int `json:"info"`
	Total int `json:"total"`
}

// NemesisEvent is a fault or heal as results.json lists it.
type NemesisEvent struct {
	Time    int64   `json:"time"` // ns since run start
	Seconds float64 `json:"seconds"`
	F       string  `json:"f"`
	Targets []int   `json:"targets,omitempty"`
	Detail  string  `json:"detail,omitempty"`
	Error   string  `json:"error,omitempty"`
}

// Results is results.json.
type Results struct {
	Verdict     checker.Verdict           `json:"verdict"`
	Dir         string                    `json:"dir"`
	Interrupted bool                      `json:"interrupted,omitempty"`
	Config      json.RawMessage           `json:"config,omitempty"`
	Checkers    map[string]checker.Result `json:"checkers"`
	// NotRun lists the checkers that did not run, and why.
	NotRun map[string]string `json:"not_run,omitempty"`
	// Torn is a last history line the run never finished writing.
	Torn       *history.Torn     `json:"torn,omitempty"`
	Anomalies  []checker.Anomaly `json:"anomalies"`
	Ops        OpCounts          `json:"ops"`
	FinalReads OpCounts          `json:"final_reads"`
	OpsPerSec  float64           `json:"ops_per_sec"` // acknowledged operations per second, final reads excluded
	Seconds    float64           `json:"seconds"`     // from the first to the last event
	Nemesis    []NemesisEvent    `json:"nemesis_events"`
	// LongestGap is the longest time without an acknowledged operation
	// in the main phase, in seconds, the load's two ends included: the
	// worst unavailability (Availability.LongestGap, where it was).
	LongestGap float64 `json:"longest_gap_s"`
	// Availability is how much of the load the system served, and each
	// fault's acknowledgements and recovery (nil: an imported history,
	// whose times are its events' order, or no main phase).
	Availability *checker.Availability `json:"availability,omitempty"`
	// TimeIsOrder: the history was imported without real times (its
	// events' order is its time), so no rate or gap is measured.
	TimeIsOrder bool `json:"time_is_order,omitempty"`
	// Damage lists what the corrupt faults damaged, and the nodes that
	// then refused to start (and why, in their own words).
	Damage []string `json:"damage,omitempty"`
	// LeftOut are the nemeses of --nemesis all the run left out, and why
	// (they need more nodes than it had).
	LeftOut map[string]string `json:"left_out,omitempty"`
	// Replay, for a replayed run: how closely it followed the recording.
	Replay json.RawMessage `json:"replay,omitempty"`
}

// Summarize fills counts, throughput and nemesis events from a history.
func Summarize(h *checker.History) (ops, final OpCounts, opsPerSec, seconds float64, nem []NemesisEvent) {
	var first, lastWork int64 = -1, 0
	at := func(t int64) {
		if first < 0 || t < first {
			first = t
		}
	}
	for _, e := range h.Nemesis {
		at(e.Time)
		nem = append(nem, NemesisEvent{Time: e.Time, Seconds: float64(e.Time) / 1e9, F: e.F, Targets: e.Targets, Detail: e.Detail, Error: e.Error})
	}
	for i := range h.Ops {
		op := &h.Ops[i]
		at(op.Call)
		c := &final
		if !op.Final {
			c = &ops
			lastWork = max(lastWork, op.Call, op.Return)
		}
		c.Total++
		switch op.Type {
		case history.OK:
			c.OK++
		case history.Fail:
			c.Fail++
		case history.Info:
			c.Info++
		}
	}
	if first >= 0 {
		seconds = float64(h.Last-first) / 1e9
		if span := float64(lastWork-first) / 1e9; span > 0 {
			opsPerSec = float64(ops.OK) / span
		}
	}
	if nem == nil {
		nem = []NemesisEvent{}
	}
	return
}

// WriteJSON writes v as indented JSON to path, through a temporary file so
// a crash never leaves half a file.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Summary writes the human summary of a run.
func Summary(w io.Writer, r Results) {
	fmt.Fprintf(w, "\nrun %s\n", r.Dir)
	if r.TimeIsOrder {
		fmt.Fprintf(w, "operations: %d ok, %d fail, %d info (imported: the events' order is their time, so no rate is measured)\n", r.Ops.OK, r.Ops.Fail, r.Ops.Info)
		fmt.Fprintf(w, "nemesis events: %d\n", len(r.Nemesis))
	} else {
		fmt.Fprintf(w, "operations: %d ok, %d fail, %d info; %.0f acknowledged ops/s\n", r.Ops.OK, r.Ops.Fail, r.Ops.Info, r.OpsPerSec)
		fmt.Fprintf(w, "nemesis events: %d\n", len(r.Nemesis))
		availabilitySummary(w, r.Availability)
	}
	if len(r.LeftOut) > 0 {
		var left []string
		for n, why := range r.LeftOut {
			left = append(left, n+" ("+why+")")
		}
		sort.Strings(left)
		fmt.Fprintf(w, "left out of --nemesis all: %s\n", strings.Join(left, ", "))
	}
	names := make([]string, 0, len(r.Checkers))
	for n := range r.Checkers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := r.Checkers[n]
		fmt.Fprintf(w, "  %-16s %-8s %s\n", n, c.Verdict, c.Detail)
	}
	findings(w, r.Anomalies)
	for _, d := range r.Damage {
		fmt.Fprintf(w, "  damage: %s\n", d)
	}
	replaySummary(w, r.Replay)
	if r.Interrupted {
		fmt.Fprintln(w, "the run was interrupted: the history is a prefix and the final logs may be missing")
	}
	fmt.Fprintf(w, "verdict: %s\n", r.Verdict)
}

// availabilitySummary writes what the load served: its share, the
// longest gap and what was in force then, and how the faults recovered.
func availabilitySummary(w io.Writer, a *checker.Availability) {
	if a == nil {
		fmt.Fprintln(w, "availability: no main phase")
		return
	}
	g := a.LongestGap
	servable := ""
	if a.Servable < a.Load.Seconds()-1e-9 {
		servable = fmt.Sprintf("; %.0f%% of the %.1f s a majority of the nodes was up", 100*a.ServableShare, a.Servable)
	}
	fmt.Fprintf(w, "availability: served %.1f of %.1f s (%.0f%%%s); longest gap %.2fs (%.1f-%.1f s, %s)\n",
		a.Served, a.Load.Seconds(), 100*a.Share, servable, g.Seconds(), g.Start, g.End, orNone(g.During, "no fault in force"))
	if len(a.PerNode) > 1 {
		var nodes []string
		for n := range a.PerNode {
			nodes = append(nodes, n)
		}
		sort.Strings(nodes)
		for i, n := range nodes {
			nodes[i] = fmt.Sprintf("%s %.0f%%", n, 100*a.PerNode[n])
		}
		fmt.Fprintf(w, "  served by: %s\n", strings.Join(nodes, ", "))
	}
	if len(a.Faults) > 0 {
		rec := Recoveries(a.Faults)
		fmt.Fprintf(w, "  faults: %d; recovery after each: median %.2fs, max %.2fs; did not recover: %d\n",
			len(a.Faults), rec.Median, rec.Max, rec.Missed)
	}
}

// RecoveryFigures sum up the recoveries of a run's faults.
type RecoveryFigures struct {
	Median, Max float64 // seconds, over the faults that recovered
	Missed      int     // faults no acknowledgement followed
}

// Recoveries are the median and longest recovery of faults, and how many
// did not recover.
func Recoveries(faults []checker.FaultFigure) RecoveryFigures {
	var rs []float64
	var out RecoveryFigures
	for _, f := range faults {
		if !f.Recovered() {
			out.Missed++
			continue
		}
		rs = append(rs, f.Recovery)
	}
	if len(rs) > 0 {
		slices.Sort(rs)
		out.Median, out.Max = rs[len(rs)/2], rs[len(rs)-1]
	}
	return out
}

func orNone(s, none string) string {
	if s == "" {
		return none
	}
	return "during " + s
}

// findings writes the anomalies, safety violations apart from liveness
// findings (the system stopped serving).
func findings(w io.Writer, all []checker.Anomaly) {
	for _, liveness := range []bool{false, true} {
		shown := 0
		for _, a := range all {
			if checker.IsLiveness(a.Kind) != liveness {
				continue
			}
			if shown == 10 {
				fmt.Fprintln(w, "  ... more in results.json")
				break
			}
			if shown == 0 {
				fmt.Fprintf(w, "%s findings:\n", map[bool]string{false: "safety", true: "liveness"}[liveness])
			}
			shown++
			fmt.Fprintf(w, "  ! %s: %s\n", a.Kind, a.Detail)
		}
	}
}

// replaySummary says how closely a replay followed its recording.
func replaySummary(w io.Writer, replay json.RawMessage) {
	if len(replay) == 0 {
		return
	}
	var rp struct {
		Steps, Executed, Remapped, Errors int
		MaxLateMs                         float64 `json:"max_late_ms"`
		MedianLate                        float64 `json:"median_late_ms"`
	}
	if err := json.Unmarshal(replay, &rp); err != nil {
		fmt.Fprintf(w, "replay: unreadable in results.json: %v\n", err)
		return
	}
	fmt.Fprintf(w, "replay: %d of %d recorded steps executed, %d remapped onto the current leader, %d errors; lateness median %.1f ms, max %.1f ms\n",
		rp.Executed, rp.Steps, rp.Remapped, rp.Errors, rp.MedianLate, rp.MaxLateMs)
}
