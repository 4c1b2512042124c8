package checker

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/paxtest/paxtest/nemesis/fault"
)

// Floor is what a run must have exercised for its verdict to be valid:
// a run below it tested too little to say valid, and says unknown.
type Floor struct {
	// MinAvailability is the least share of the time the system could
	// serve (a majority of its nodes up: Availability.ServableShare) in
	// which an operation was acknowledged (0: no floor on availability).
	MinAvailability float64
	// Faults: a nemesis was asked for, so at least one fault must have
	// begun while the system was serving.
	Faults bool
	// Cluster tells when the system could serve: availability is judged
	// over that time (its size unknown: over the whole load).
	Cluster Cluster
	// Grace: a fault that ended (or, in force at the load's end, began)
	// this close to the load's end need not be followed by an
	// acknowledgement within the load (the final reads then show
	// whether the system recovered).
	Grace time.Duration
}

// CheckPower measures the run's availability and judges its power: the
// verdict is valid when the run exercised the system — availability at
// or above the floor, an acknowledgement after every fault (after its
// end, or, for one in force at the load's end, after its start), every kind of operation the workload issues
// acknowledged at least once in the main phase (final reads are not
// evidence of it), and, when a nemesis was asked for, a fault that began
// while the system was serving; otherwise unknown, saying what fell
// short. It never says invalid: too little evidence is not a violation.
func CheckPower(h *History, f Floor) (Availability, Result) {
	a, ok := MeasureAvailability(h, f.Cluster)
	if !ok {
		return a, JudgePower(h, nil, f)
	}
	return a, JudgePower(h, &a, f)
}

// JudgePower is CheckPower's judgement on availability measured already
// (nil: the history has no main phase).
func JudgePower(h *History, a *Availability, f Floor) Result {
	started := time.Now()
	if a == nil {
		return Result{Verdict: Unknown, Detail: "no client operation before the final reads: the run exercised nothing",
			Millis: time.Since(started).Milliseconds()}
	}
	load := Load{int64(a.Load.Start * 1e9), int64(a.Load.End * 1e9)}
	var short, good []string
	add := func(shortfall string, fine string) {
		if shortfall != "" {
			short = append(short, shortfall)
		} else if fine != "" {
			good = append(good, fine)
		}
	}
	add(availabilityShortfall(*a, f))
	add(healShortfall(h, *a, load, f.Grace))
	add(kindShortfall(h))
	if f.Faults {
		add(faultShortfall(h))
	}
	res := Result{Verdict: Valid, Detail: strings.Join(good, "; "), Checked: len(a.Faults)}
	if len(short) > 0 {
		res.Verdict, res.Detail = Unknown, "the run tested too little to say valid: "+strings.Join(short, "; ")
	}
	res.Millis = time.Since(started).Milliseconds()
	return res
}

// availabilityShortfall compares the share served of the time the
// system could serve with the floor.
func availabilityShortfall(a Availability, f Floor) (string, string) {
	length := a.Load.Seconds()
	served := fmt.Sprintf("served %.1f of %.1f s (%.0f%%)", a.Served, length, 100*a.Share)
	if a.Servable < length-1e-9 {
		served += fmt.Sprintf(", %.0f%% of the %.1f s in which a majority of its nodes was up", 100*a.ServableShare, a.Servable)
	}
	if f.MinAvailability <= 0 || a.ServableShare >= f.MinAvailability {
		return "", served
	}
	msg := fmt.Sprintf("%.1f s of %.1f s had no acknowledged operation", length-a.Served, length)
	if a.Servable < length-1e-9 {
		msg += fmt.Sprintf("; of the %.1f s in which a majority of the nodes was up, %.0f%% was served", a.Servable, 100*a.ServableShare)
	}
	msg += fmt.Sprintf(" (below the floor of %.0f%%)", 100*f.MinAvailability)
	if g := a.LongestGap; g.Seconds() > 0 {
		msg += fmt.Sprintf("; the longest gap, %.1f s from %.1f s to %.1f s, %s", g.Seconds(), g.Start, g.End, gapCause(g))
	}
	return msg, ""
}

// gapCause says what was in force during a gap.
func gapCause(g Gap) string {
	if g.During == "" {
		return "with no fault in force"
	}
	return "while " + g.During + " was in force"
}

// healShortfall lists the faults after which the main phase
// acknowledged nothing: after its end, for a fault that ended within the
// load; after its start, for one still in force when the load ended.
// One whose end (or start) came within the grace of the load's end is
// not asked.
func healShortfall(h *History, a Availability, load Load, grace time.Duration) (string, string) {
	main := mainAcks(h)
	var missed []string
	asked := 0
	for _, ff := range a.Faults {
		at, what := ff.End, "ended"
		if ff.AfterLoad {
			at, what = ff.Start, "began (in force until the load's end)"
		}
		t := int64(at * 1e9)
		if t > load.End-int64(grace) {
			continue
		}
		asked++
		i := sort.Search(len(main), func(i int) bool { return main[i] > t })
		if i == len(main) || main[i] > load.End {
			missed = append(missed, fmt.Sprintf("%s %s at %.1f s", describeFigure(ff), what, at))
		}
	}
	if len(missed) == 0 {
		return "", fmt.Sprintf("an acknowledgement after each of %d faults", asked)
	}
	return "no acknowledgement after " + listSome(missed, 3), ""
}

// describeFigure names a fault figure as its interval is named.
func describeFigure(ff FaultFigure) string {
	return describeInterval(fault.Interval{Kind: ff.Kind, Nodes: ff.Nodes, Detail: ff.Detail, Attempt: ff.Attempt})
}

// kindShortfall names the kinds of operation the workload issues that no
// main-phase operation of acknowledged.
func kindShortfall(h *History) (string, string) {
	invoked, acked := map[string]int{}, map[string]bool{}
	for i := range h.Ops {
		if op := &h.Ops[i]; !op.Final {
			invoked[op.F]++
			acked[op.F] = acked[op.F] || op.Type == "ok"
		}
	}
	var missed []string
	for _, f := range Vocabulary[h.Workload] {
		if !acked[f] {
			missed = append(missed, fmt.Sprintf("no %s was acknowledged in the main phase (%d invoked)", f, invoked[f]))
		}
	}
	if len(missed) > 0 {
		return strings.Join(missed, "; "), ""
	}
	return "", strings.Join(Vocabulary[h.Workload], ", ") + " each acknowledged"
}

// faultShortfall requires a fault that began while the system served: an
// acknowledgement in the second before it.
func faultShortfall(h *History) (string, string) {
	main := mainAcks(h)
	began, serving := 0, 0
	for _, e := range h.Nemesis {
		op, ok := fault.FromEvent(e.F, e.Value)
		if !ok || !op.Starts() || e.Error != "" {
			continue
		}
		began++
		i := sort.Search(len(main), func(i int) bool { return main[i] > e.Time })
		if i > 0 && main[i-1] > e.Time-grain {
			serving++
		}
	}
	switch {
	case began == 0:
		return "a nemesis was asked for, but no fault was performed", ""
	case serving == 0:
		return fmt.Sprintf("none of the %d faults began while the system was serving (an acknowledgement in the second before it)", began), ""
	}
	return "", fmt.Sprintf("%d of %d faults began while the system was serving", serving, began)
}

// listSome joins up to n items, counting the rest.
func listSome(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(items[:n], "; "), len(items)-n)
}

// mainAcks are the completion times of the main phase's acknowledged
// operations, in order.
func mainAcks(h *History) []int64 {
	var out []int64
	for _, x := range acks(h) {
		if !x.final {
			out = append(out, x.at)
		}
	}
	return out
}
