// Package reports renders a checked run: results.json (the verdict, each
// checker's result, anomalies with their evidence, operation counts,
// throughput and nemesis events) and the HTML pages. It renders to an
// io.Writer from data it is handed; it must not run checks or touch nodes.
package reports

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/paxtest/paxtest/checker"
	"github.com/paxtest/paxtest/checker/history"
	"github.com/paxtest/paxtest/nemesis/fault"
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
	// RecoverySeconds, on a fault's start: the time until the first
	// operation invoked after it was acknowledged (-1: none was).
	RecoverySeconds float64 `json:"recovery_s,omitempty"`
	starts          bool    // the event puts a fault in force
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
	// LongestGap is the longest time between two acknowledged operations
	// of the main phase, in seconds: the worst unavailability.
	LongestGap float64 `json:"longest_gap_s"`
	// TimeIsOrder: the history was imported without real times (its
	// events' order is its time), so no rate or gap is measured.
	TimeIsOrder bool `json:"time_is_order,omitempty"`
	// Damage lists what the corrupt faults damaged, and the nodes that
	// then refused to start (and why, in their own words).
	Damage []string `json:"damage,omitempty"`
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
		op, isOp := fault.FromEvent(e.F, e.Value)
		nem = append(nem, NemesisEvent{Time: e.Time, Seconds: float64(e.Time) / 1e9, F: e.F, Targets: e.Targets, Detail: e.Detail, Error: e.Error,
			starts: isOp && op.Starts()})
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
	recovery(h, nem)
	return
}

// recovery fills RecoverySeconds of each fault start: how long until an
// operation invoked after it was acknowledged.
func recovery(h *checker.History, nem []NemesisEvent) {
	starts := false
	for i := range nem {
		starts = starts || nem[i].starts
	}
	if !starts {
		return
	}
	type ack struct{ invoke, done int64 }
	acks := make([]ack, 0, len(h.Ops))
	for i := range h.Ops {
		if op := &h.Ops[i]; !op.Final && op.Type == history.OK {
			acks = append(acks, ack{op.Call, op.Return})
		}
	}
	slices.SortFunc(acks, func(a, b ack) int { return cmp.Compare(a.invoke, b.invoke) })
	// soonest[i]: the earliest acknowledgement of an op invoked at acks[i] or later
	soonest := make([]int64, len(acks)+1)
	soonest[len(acks)] = -1
	for i := len(acks) - 1; i >= 0; i-- {
		soonest[i] = acks[i].done
		if next := soonest[i+1]; next >= 0 && next < soonest[i] {
			soonest[i] = next
		}
	}
	for i := range nem {
		if !nem[i].starts {
			continue
		}
		j := sort.Search(len(acks), func(k int) bool { return acks[k].invoke > nem[i].Time })
		nem[i].RecoverySeconds = -1
		if soonest[j] >= 0 {
			nem[i].RecoverySeconds = float64(soonest[j]-nem[i].Time) / 1e9
		}
	}
}

// LongestGap returns the longest time, in seconds, between consecutive
// acknowledgements of the main phase.
func LongestGap(h *checker.History) float64 {
	done := make([]int64, 0, len(h.Ops))
	for i := range h.Ops {
		if op := &h.Ops[i]; !op.Final && op.Type == history.OK {
			done = append(done, op.Return)
		}
	}
	slices.Sort(done)
	var gap int64
	for i := 1; i < len(done); i++ {
		gap = max(gap, done[i]-done[i-1])
	}
	return float64(gap) / 1e9
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
		fmt.Fprintf(w, "nemesis events: %d; longest gap between acknowledgements %.2fs\n", len(r.Nemesis), r.LongestGap)
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
	for i, a := range r.Anomalies {
		if i == 10 {
			fmt.Fprintf(w, "  ... %d more anomalies in results.json\n", len(r.Anomalies)-10)
			break
		}
		fmt.Fprintf(w, "  ! %s: %s\n", a.Kind, a.Detail)
	}
	for _, d := range r.Damage {
		fmt.Fprintf(w, "  damage: %s\n", d)
	}
	if len(r.Replay) > 0 {
		var rp struct {
			Steps, Executed, Remapped, Errors int
			MaxLateMs                         float64 `json:"max_late_ms"`
			MedianLate                        float64 `json:"median_late_ms"`
		}
		if err := json.Unmarshal(r.Replay, &rp); err != nil {
			fmt.Fprintf(w, "replay: unreadable in results.json: %v\n", err)
		} else {
			fmt.Fprintf(w, "replay: %d of %d recorded steps executed, %d remapped onto the current leader, %d errors; lateness median %.1f ms, max %.1f ms\n",
				rp.Executed, rp.Steps, rp.Remapped, rp.Errors, rp.MedianLate, rp.MaxLateMs)
		}
	}
	if r.Interrupted {
		fmt.Fprintln(w, "the run was interrupted: the history is a prefix and the final logs may be missing")
	}
	fmt.Fprintf(w, "verdict: %s\n", r.Verdict)
}
