package history

import (
	"sort"
	"strings"
)

// Interval is one fault, from its first event to its heal.
type Interval struct {
	Kind       string
	Start, End int64
	Targets    []int
	Detail     string
}

// FaultIntervals pairs nemesis events into intervals: "start-K" — or the
// first "step-K" of a multi-step scenario — opens K, "stop-K" closes it;
// a fault still open at the end lasts until the last event.
func FaultIntervals(h []Event) []Interval {
	var out []Interval
	open := map[string]*Interval{}
	var last int64
	for _, e := range h {
		last = max(last, e.Time)
		if !e.IsNemesis() {
			continue
		}
		var kind, verb string
		switch {
		case strings.HasPrefix(e.F, "start-"):
			kind, verb = e.F[6:], "start"
		case strings.HasPrefix(e.F, "stop-"):
			kind, verb = e.F[5:], "stop"
		case strings.HasPrefix(e.F, "step-"):
			kind, verb = e.F[5:], "step"
		default:
			continue // a point event such as heal-all
		}
		iv := open[kind]
		switch verb {
		case "start", "step":
			if iv == nil {
				iv = &Interval{Kind: kind, Start: e.Time}
				open[kind] = iv
			}
			if verb == "start" {
				iv.Targets, iv.Detail = e.Targets, e.Detail
			}
		case "stop":
			if iv != nil {
				iv.End = e.Time
				out = append(out, *iv)
				delete(open, kind)
			}
		}
	}
	for _, iv := range open {
		iv.End = last
		out = append(out, *iv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out
}
