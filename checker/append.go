package checker

import (
	"fmt"
	"sort"
	"time"

	"github.com/paxtest/paxtest/checker/history"
)

func nowMillis() int64 { return time.Now().UnixMilli() }

// CheckAppend checks the append workload per key: all reads are prefixes
// of one another, a read that began after another ended extends it, a read
// holds every append acknowledged before it began, and no value appears
// twice or without an append that wrote it.
func CheckAppend(h *History) Result {
	start := nowMillis()
	res := Result{Verdict: Valid}
	for _, k := range h.Keys {
		var reads, acked []*Op
		attempted := map[string]bool{}
		for _, op := range h.KeyOps(k) {
			switch op.F {
			case "append":
				attempted[op.Value] = true
				if op.Type == history.OK {
					acked = append(acked, op)
				}
			case "read":
				if op.Type == history.OK {
					reads = append(reads, op)
				}
			}
		}
		res.Checked += len(reads)
		sort.SliceStable(reads, func(i, j int) bool { return reads[i].Call < reads[j].Call })
		bad := func(kind string, at int64, detail string, ev any) {
			res.Anomalies = append(res.Anomalies, Anomaly{Kind: kind, Key: k, Time: at, Detail: detail, Evidence: mustJSON(ev)})
			if !contains(res.FailingKeys, k) {
				res.FailingKeys = append(res.FailingKeys, k)
			}
		}
		for _, r := range reads {
			dup := map[string]bool{}
			for _, v := range r.List {
				if dup[v] {
					bad(KindDuplicateAppend, r.Call, fmt.Sprintf("key %s: read at %.3fs holds %q twice", k, sec(r.Return), v), r)
				}
				dup[v] = true
				if !attempted[v] {
					bad(KindPhantomValue, r.Call, fmt.Sprintf("key %s: read holds %q, which no client appended", k, v), r)
				}
			}
			for _, a := range acked {
				if a.Return < r.Call && !dup[a.Value] {
					bad(KindAckWriteLost, a.Return, fmt.Sprintf("key %s: append %q acknowledged at %.3fs is missing from a read begun at %.3fs",
						k, a.Value, sec(a.Return), sec(r.Call)), map[string]any{"append": a, "read": r})
				}
			}
		}
		for i := range reads {
			for j := i + 1; j < len(reads); j++ {
				a, b := reads[i], reads[j]
				if !isPrefix(a.List, b.List) && !isPrefix(b.List, a.List) {
					bad(KindAppendNotPrefix, b.Call, fmt.Sprintf("key %s: reads at %.3fs and %.3fs disagree: neither list is a prefix of the other",
						k, sec(a.Call), sec(b.Call)), []any{a, b})
				} else if a.Return < b.Call && len(b.List) < len(a.List) {
					bad(KindAppendNotPrefix, b.Call, fmt.Sprintf("key %s: a read begun at %.3fs returned %d values, fewer than the %d of a read that ended before it",
						k, sec(b.Call), len(b.List), len(a.List)), []any{a, b})
				}
			}
		}
	}
	switch {
	case len(res.Anomalies) > 0:
		res.Verdict = Invalid
		res.Detail = fmt.Sprintf("%d anomalies on %d keys", len(res.Anomalies), len(res.FailingKeys))
	default:
		res.Detail = fmt.Sprintf("%d reads over %d keys are consistent prefixes holding every acknowledged append", res.Checked, len(h.Keys))
	}
	res.Millis = nowMillis() - start
	return res
}

func isPrefix(a, b []string) bool {
	if len(a) > len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sec(ns int64) float64 { return float64(ns) / 1e9 }
