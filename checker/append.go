package checker

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/paxtest/paxtest/harness/history"
)

func nowMillis() int64 { return time.Now().UnixMilli() }

type listRead struct {
	op   operation
	list []string
}

// CheckAppend checks the append workload per key: all reads are prefixes
// of one another, a read that began after another ended extends it, a read
// holds every append acknowledged before it began, and no value appears
// twice or without an append that wrote it.
func CheckAppend(h []history.Event) Result {
	start := nowMillis()
	reads := map[string][]listRead{}
	acked := map[string][]operation{}
	attempted := map[string]map[string]bool{}
	for _, p := range pairOperations(h) {
		k := p.invoke.Key
		switch p.invoke.F {
		case "append":
			var v string
			json.Unmarshal(p.invoke.Value, &v)
			if attempted[k] == nil {
				attempted[k] = map[string]bool{}
			}
			attempted[k][v] = true
			if p.done.Type == history.OK {
				acked[k] = append(acked[k], p)
			}
		case "read":
			if p.done.Type != history.OK {
				continue
			}
			var l []string
			if err := json.Unmarshal(p.done.Value, &l); err != nil {
				return Result{Verdict: Unknown, Detail: fmt.Sprintf("history event %d: read result: %v", p.done.Index, err)}
			}
			reads[k] = append(reads[k], listRead{p, l})
		}
	}
	res := Result{Verdict: Valid}
	keys := make([]string, 0, len(reads))
	for k := range reads {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		rs := reads[k]
		res.Checked += len(rs)
		sort.Slice(rs, func(i, j int) bool { return rs[i].op.invoke.Time < rs[j].op.invoke.Time })
		bad := func(kind string, at int64, detail string, ev any) {
			res.Anomalies = append(res.Anomalies, Anomaly{Kind: kind, Key: k, Time: at, Detail: detail, Evidence: mustJSON(ev)})
			if !contains(res.FailingKeys, k) {
				res.FailingKeys = append(res.FailingKeys, k)
			}
		}
		for _, r := range rs {
			dup := map[string]bool{}
			for _, v := range r.list {
				if dup[v] {
					bad(KindDuplicateAppend, r.op.invoke.Time, fmt.Sprintf("key %s: read at %.3fs holds %q twice", k, sec(r.op.done.Time), v), r.op)
				}
				dup[v] = true
				if !attempted[k][v] {
					bad(KindPhantomValue, r.op.invoke.Time, fmt.Sprintf("key %s: read holds %q, which no client appended", k, v), r.op)
				}
			}
			for _, a := range acked[k] {
				var v string
				json.Unmarshal(a.invoke.Value, &v)
				if a.done.Time < r.op.invoke.Time && !dup[v] {
					bad(KindAckWriteLost, a.done.Time, fmt.Sprintf("key %s: append %q acknowledged at %.3fs is missing from a read begun at %.3fs",
						k, v, sec(a.done.Time), sec(r.op.invoke.Time)), map[string]any{"append": a, "read": r.op})
				}
			}
		}
		for i := range rs {
			for j := i + 1; j < len(rs); j++ {
				a, b := rs[i], rs[j]
				if !isPrefix(a.list, b.list) && !isPrefix(b.list, a.list) {
					bad(KindAppendNotPrefix, b.op.invoke.Time, fmt.Sprintf("key %s: reads at %.3fs and %.3fs disagree: neither list is a prefix of the other",
						k, sec(a.op.invoke.Time), sec(b.op.invoke.Time)), []any{a.op, b.op})
				} else if a.op.done.Time < b.op.invoke.Time && len(b.list) < len(a.list) {
					bad(KindAppendNotPrefix, b.op.invoke.Time, fmt.Sprintf("key %s: a read begun at %.3fs returned %d values, fewer than the %d of a read that ended before it",
						k, sec(b.op.invoke.Time), len(b.list), len(a.list)), []any{a.op, b.op})
				}
			}
		}
	}
	switch {
	case len(res.Anomalies) > 0:
		res.Verdict = Invalid
		res.Detail = fmt.Sprintf("%d anomalies on %d keys", len(res.Anomalies), len(res.FailingKeys))
	default:
		res.Detail = fmt.Sprintf("%d reads over %d keys are consistent prefixes holding every acknowledged append", res.Checked, len(keys))
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
