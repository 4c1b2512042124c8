package checker

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/paxtest/paxtest/checker/history"
)

// KindNeverSucceeded: a kind of operation was invoked many times and never
// once succeeded.
const KindNeverSucceeded = "never-succeeded"

// statsMinInvocations is how many invocations of one kind, none
// successful, make the run invalid: fewer may all fall into a fault's
// window.
const statsMinInvocations = 20

// CheckStats is Jepsen's stats checker: every kind of operation (f) of the
// main phase invoked at least statsMinInvocations times must have
// succeeded at least once. A system that never completes a put is broken
// however linearizable its history is. (Final reads that all failed are
// CheckLiveness's did-not-recover: the cluster did not serve again.)
func CheckStats(h *History) Result {
	started := time.Now()
	type count struct{ invoked, ok, fail, info int }
	by := map[string]*count{}
	first := map[string]int64{}
	for i := range h.Ops {
		op := &h.Ops[i]
		f := op.F
		if op.Final {
			f = "final " + f
		}
		c := by[f]
		if c == nil {
			c = &count{}
			by[f] = c
			first[f] = op.Call
		}
		c.invoked++
		switch op.Type {
		case history.OK:
			c.ok++
		case history.Fail:
			c.fail++
		default:
			c.info++
		}
	}
	fs := make([]string, 0, len(by))
	for f := range by {
		fs = append(fs, f)
	}
	sort.Strings(fs)
	res := Result{Verdict: Valid, Checked: len(fs)}
	var parts []string
	for _, f := range fs {
		c := by[f]
		parts = append(parts, fmt.Sprintf("%s %d ok/%d fail/%d info", f, c.ok, c.fail, c.info))
		// final reads of which none succeeded are the liveness check's
		// finding (did-not-recover), reported there once
		if c.ok == 0 && c.invoked >= statsMinInvocations && !strings.HasPrefix(f, "final ") {
			res.Verdict = Invalid
			res.Anomalies = append(res.Anomalies, Anomaly{Kind: KindNeverSucceeded, Time: first[f],
				Detail: fmt.Sprintf("%d %s operations were invoked and none succeeded (%d failed, %d indeterminate)", c.invoked, f, c.fail, c.info)})
		}
	}
	res.Detail = strings.Join(parts, "; ")
	if len(fs) == 0 {
		res.Detail = "no client operation"
	}
	res.Millis = time.Since(started).Milliseconds()
	return res
}
