package checker

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/paxtest/paxtest/checker/history"
	"github.com/paxtest/paxtest/nemesis/fault"
	"github.com/paxtest/paxtest/target/quorum"
)

// grain is the unit of availability: a second of the load is served when
// at least one operation was acknowledged in it.
const grain = int64(1e9)

// Load is a run's main phase, read off its history: from the first
// client invocation to the last completion before the final reads. A
// harness run's workers start with the load and stop at its end (an
// operation still open then is given up within a fraction of a second),
// so this is the load as it ran; for an imported history it is the span
// its client operations cover.
type Load struct{ Start, End int64 }

// LoadOf returns the main phase of h; false when it has no client
// operation outside the final reads.
func LoadOf(h *History) (Load, bool) {
	l := Load{Start: -1}
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Final {
			continue
		}
		if l.Start < 0 || op.Call < l.Start {
			l.Start = op.Call
		}
		l.End = max(l.End, op.Call, op.Return)
	}
	return l, l.Start >= 0
}

// Span is a stretch of the run, in seconds since its start.
type Span struct {
	Start float64 `json:"start_s"`
	End   float64 `json:"end_s"`
}

// Seconds is the span's length.
func (s Span) Seconds() float64 { return s.End - s.Start }

// Gap is a stretch without an acknowledgement: between two, or from the
// load's start to the first, or from the last to the load's end.
type Gap struct {
	Span
	// During names the faults in force during the gap ("" : none was).
	During string `json:"during,omitempty"`
}

// FaultFigure is one fault as availability sees it: how much the system
// served while it was in force, and how soon it served again after the
// fault ended.
type FaultFigure struct {
	Kind   string `json:"kind"`
	Nodes  []int  `json:"nodes,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Attempt: a scenario's attempt (Kind names the scenario), whose
	// faults are figures of their own too.
	Attempt bool `json:"attempt,omitempty"`
	Span
	// Acks is how many operations were acknowledged while it was in force.
	Acks int `json:"acks"`
	// Recovery is the time from its end (its heal) to the first
	// acknowledgement after it, main phase or final reads, in seconds;
	// -1: none came (it did not recover).
	Recovery float64 `json:"recovery_s"`
	// AfterLoad: it ended after the load, and only the final reads could
	// show its recovery.
	AfterLoad bool `json:"after_load,omitempty"`
}

// Recovered reports whether an acknowledgement followed the fault's end.
func (f FaultFigure) Recovered() bool { return f.Recovery >= 0 }

// Availability is how much of the load the system served: the share of
// its seconds with at least one acknowledged operation (cluster-wide and
// by the node that answered), the same share of the time it could serve
// (a majority of its nodes up), the seconds without one, the longest gap
// between acknowledgements (the load's two ends count), and each fault's
// acknowledgements and recovery.
type Availability struct {
	Load   Span    `json:"load"`
	Served float64 `json:"served_s"` // seconds of the load inside a served second
	Share  float64 `json:"share"`    // Served over the load's length
	// Servable is the time of the load in which the system could serve:
	// a majority of its nodes running (none killed, powered off or
	// paused beyond a minority), and one recovery time past the last
	// moment it was not. ServableShare is the part of it inside a served
	// second: how much of what it could serve it did. Without the
	// cluster's size both are the whole load.
	Servable      float64 `json:"servable_s"`
	ServableShare float64 `json:"servable_share"`
	// Unserved are the runs of seconds without an acknowledgement.
	Unserved   []Span `json:"unserved,omitempty"`
	LongestGap Gap    `json:"longest_gap"`
	// PerNode is each answering node's share of the load's seconds.
	PerNode map[string]float64 `json:"per_node,omitempty"`
	Faults  []FaultFigure      `json:"faults,omitempty"`
}

// ack is an acknowledged operation's completion.
type ack struct {
	at    int64
	node  string
	final bool
}

// acks lists h's acknowledged operations by completion time.
func acks(h *History) []ack {
	out := make([]ack, 0, len(h.Ops))
	for i := range h.Ops {
		if op := &h.Ops[i]; op.Type == history.OK {
			out = append(out, ack{op.Return, op.Node, op.Final})
		}
	}
	slices.SortFunc(out, func(a, b ack) int { return cmp.Compare(a.at, b.at) })
	return out
}

// FaultIntervals are the intervals the fault ops among a history's
// nemesis events put faults in force; one still in force at the end
// lasts until the last event.
func FaultIntervals(h *History) []fault.Interval {
	var ops []fault.Op
	for _, e := range h.Nemesis {
		if op, ok := fault.FromEvent(e.F, e.Value); ok {
			ops = append(ops, op)
		}
	}
	return fault.Intervals(ops, h.Last)
}

// Cluster is what availability needs to know of the cluster to tell when
// it could serve: how many nodes it has (0: unknown, then it always
// could) and how long it takes to serve again once a majority is back.
type Cluster struct {
	Nodes    int
	Recovery time.Duration
}

// MeasureAvailability computes the availability of h's load; false when
// the history has no main phase.
func MeasureAvailability(h *History, c Cluster) (Availability, bool) {
	load, ok := LoadOf(h)
	if !ok {
		return Availability{}, false
	}
	acked := acks(h)
	var main []ack
	for _, a := range acked {
		if !a.final {
			main = append(main, a)
		}
	}
	a := Availability{Load: Span{sec(load.Start), sec(load.End)}}
	served, byNode := servedSeconds(load, main)
	a.Served = servedTime(load, served)
	if d := load.End - load.Start; d > 0 {
		a.Share = a.Served / sec(d)
	} else if len(main) > 0 {
		a.Share = 1
	}
	a.Unserved = unservedSpans(load, served)
	for node, s := range byNode {
		if a.PerNode == nil {
			a.PerNode = map[string]float64{}
		}
		a.PerNode[node] = servedTime(load, s) / max(sec(load.End-load.Start), 1e-9)
	}
	all := FaultIntervals(h)
	a.Servable, a.ServableShare = servable(load, served, quorumDown(all, c))
	faults := mergeIntervals(all)
	a.LongestGap = longestGap(load, main, faults)
	a.Faults = faultFigures(load, acked, faults)
	return a, true
}

// servedSeconds marks the load's seconds with an acknowledgement, for the
// cluster and for each answering node.
func servedSeconds(load Load, main []ack) ([]bool, map[string][]bool) {
	n := max(int((load.End-load.Start+grain-1)/grain), 1)
	served := make([]bool, n)
	byNode := map[string][]bool{}
	for _, a := range main {
		i := min(max(int((a.at-load.Start)/grain), 0), n-1)
		served[i] = true
		if a.node == "" {
			continue
		}
		if byNode[a.node] == nil {
			byNode[a.node] = make([]bool, n)
		}
		byNode[a.node][i] = true
	}
	return served, byNode
}

// servedTime is the length of the served seconds (the last one may be
// cut short by the load's end).
func servedTime(load Load, served []bool) float64 {
	var t int64
	for i, s := range served {
		if s {
			from := load.Start + int64(i)*grain
			t += min(grain, load.End-from)
		}
	}
	return sec(max(t, 0))
}

// unservedSpans merges the seconds without an acknowledgement into spans.
func unservedSpans(load Load, served []bool) []Span {
	var out []Span
	for i := 0; i < len(served); i++ {
		if served[i] {
			continue
		}
		j := i
		for j+1 < len(served) && !served[j+1] {
			j++
		}
		from, to := load.Start+int64(i)*grain, min(load.End, load.Start+int64(j+1)*grain)
		if to > from {
			out = append(out, Span{sec(from), sec(to)})
		}
		i = j
	}
	return out
}

// longestGap is the longest stretch of the load without an
// acknowledgement, with the faults in force during it.
func longestGap(load Load, main []ack, faults []fault.Interval) Gap {
	edges := make([]int64, 0, len(main)+2)
	edges = append(edges, load.Start)
	for _, a := range main {
		edges = append(edges, min(max(a.at, load.Start), load.End))
	}
	edges = append(edges, load.End)
	var from, to int64
	for i := 1; i < len(edges); i++ {
		if d := edges[i] - edges[i-1]; d > to-from {
			from, to = edges[i-1], edges[i]
		}
	}
	g := Gap{Span: Span{sec(from), sec(to)}}
	var during []string
	for _, iv := range faults {
		if iv.Start < to && iv.End > from && len(during) < 3 {
			during = append(during, fmt.Sprintf("%s (from %.1f s)", describeInterval(iv), sec(iv.Start)))
		}
	}
	g.During = strings.Join(during, "; ")
	return g
}

// describeInterval names a fault: its op's description, or its kind and
// nodes; an attempt by its scenario.
func describeInterval(iv fault.Interval) string {
	if iv.Attempt {
		return "an attempt of " + iv.Kind
	}
	if iv.Detail != "" {
		return iv.Detail
	}
	return strings.TrimSpace(iv.Kind + " " + fault.Names(iv.Nodes))
}

// faultFigures measures each fault: its acknowledgements while in force
// and its recovery.
func faultFigures(load Load, all []ack, faults []fault.Interval) []FaultFigure {
	out := make([]FaultFigure, 0, len(faults))
	for _, iv := range faults {
		f := FaultFigure{Kind: iv.Kind, Nodes: iv.Nodes, Detail: iv.Detail, Attempt: iv.Attempt, Span: Span{sec(iv.Start), sec(iv.End)},
			Recovery: -1, AfterLoad: iv.End > load.End}
		lo := sort.Search(len(all), func(i int) bool { return all[i].at >= iv.Start })
		hi := sort.Search(len(all), func(i int) bool { return all[i].at > iv.End })
		f.Acks = hi - lo
		if hi < len(all) {
			f.Recovery = sec(all[hi].at - iv.End)
		}
		out = append(out, f)
	}
	return out
}

// mergeIntervals makes one interval of those one op began and one op
// ended (a kill of three nodes, restarted together, is one fault).
func mergeIntervals(ivs []fault.Interval) []fault.Interval {
	type key struct {
		kind, detail string
		start, end   int64
		attempt      bool
	}
	at := map[key]int{}
	var out []fault.Interval
	for _, iv := range ivs {
		k := key{iv.Kind, iv.Detail, iv.Start, iv.End, iv.Attempt}
		if i, ok := at[k]; ok {
			out[i].Nodes = append(out[i].Nodes, iv.Nodes...)
			sort.Ints(out[i].Nodes)
			continue
		}
		at[k] = len(out)
		iv.Nodes = append([]int(nil), iv.Nodes...)
		out = append(out, iv)
	}
	return out
}

// downSpan is a stretch in which the system could not serve (ns).
type downSpan struct{ from, to int64 }

// quorumDown are the stretches in which no majority of the cluster's
// nodes could serve together: too many down (killed, powered off or
// paused), or cut apart so that no running node reaches a majority over
// links open both ways; each is extended by one recovery time. Nothing
// without the cluster's size.
func quorumDown(ivs []fault.Interval, c Cluster) []downSpan {
	if c.Nodes <= 0 {
		return nil
	}
	type edge struct {
		at    int64
		start bool
		iv    int
	}
	var edges []edge
	for i, iv := range ivs {
		if iv.Attempt || !(iv.Kind == "partition" || iv.Kind == string(fault.Kill) || iv.Kind == string(fault.PowerLoss) || iv.Kind == string(fault.Pause)) {
			continue
		}
		edges = append(edges, edge{iv.Start, true, i}, edge{iv.End, false, i})
	}
	// in time order, a fault's end before another's start at one instant
	slices.SortStableFunc(edges, func(a, b edge) int {
		switch {
		case a.at != b.at:
			return cmp.Compare(a.at, b.at)
		case a.start == b.start:
			return 0
		case a.start:
			return 1
		}
		return -1
	})
	st := clusterState{down: map[int]int{}, nodes: c.Nodes}
	var out []downSpan
	var from int64 = -1
	for _, e := range edges {
		st.apply(ivs[e.iv], e.start)
		switch lost := !st.canServe(); {
		case lost && from < 0:
			from = e.at
		case !lost && from >= 0:
			out = appendDown(out, downSpan{from, e.at + int64(c.Recovery)})
			from = -1
		}
	}
	if from >= 0 {
		out = appendDown(out, downSpan{from, math.MaxInt64})
	}
	return out
}

// appendDown appends d, merged with the last span if they overlap.
func appendDown(out []downSpan, d downSpan) []downSpan {
	if n := len(out); n > 0 && d.from <= out[n-1].to {
		out[n-1].to = max(out[n-1].to, d.to)
		return out
	}
	return append(out, d)
}

// clusterState is what the faults in force leave of the cluster: the
// faults on each node that take it down, and the links cut.
type clusterState struct {
	nodes int
	down  map[int]int
	cut   map[[2]int]bool
}

func (s *clusterState) apply(iv fault.Interval, start bool) {
	if iv.Kind == "partition" {
		s.cut = nil
		if start {
			s.cut = map[[2]int]bool{}
			for _, l := range iv.Links {
				s.cut[l] = true
			}
		}
		return
	}
	for _, id := range iv.Nodes {
		if start {
			s.down[id]++
		} else {
			s.down[id]--
		}
	}
}

// canServe reports whether some running node reaches a majority of the
// nodes (itself included) that run, over links open both ways.
func (s *clusterState) canServe() bool {
	need := quorum.Majority(s.nodes)
	for v := 1; v <= s.nodes; v++ {
		if s.down[v] > 0 {
			continue
		}
		reach := 0
		for u := 1; u <= s.nodes; u++ {
			if s.down[u] == 0 && (u == v || !s.cut[[2]int{v, u}] && !s.cut[[2]int{u, v}]) {
				reach++
			}
		}
		if reach >= need {
			return true
		}
	}
	return false
}

// servable is the time of the load outside the down spans, and the part
// of it inside a served second.
func servable(load Load, served []bool, down []downSpan) (float64, float64) {
	var total, hit int64
	for i, s := range served {
		from := load.Start + int64(i)*grain
		to := min(from+grain, load.End)
		if to <= from {
			continue
		}
		left := to - from
		for _, d := range down {
			if d.to > from && d.from < to {
				left -= min(to, d.to) - max(from, d.from)
			}
		}
		left = max(left, 0)
		total += left
		if s {
			hit += left
		}
	}
	if total == 0 {
		return 0, 1 // it never could serve: nothing it failed to
	}
	return sec(total), float64(hit) / float64(total)
}
