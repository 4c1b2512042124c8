package checker

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/paxtest/paxtest/harness/history"
)

// KindNeverDecided: a kind of operation was invoked many times and never
// once answered definitely (ok, or a definite failure).
const KindNeverDecided = "never-decided"

// statsMinInvocations is how many invocations of one kind, none decided,
// make the run invalid: fewer may all fall into a fault's window.
const statsMinInvocations = 20

// CheckStats is Jepsen's stats checker, made a little more lenient: every
// kind of operation (f) of the main phase that was invoked at least
// statsMinInvocations times must have been answered definitely — ok, or a
// definite failure such as cas-mismatch — at least once. A system that
// never completes a put, however linearizable its empty history, is
// broken.
func CheckStats(h []history.Event) Result {
	started := time.Now()
	type count struct{ invoked, ok, fail, info int }
	by := map[string]*count{}
	first := map[string]int64{}
	for _, op := range pairOperations(h) {
		if op.invoke.Final {
			continue
		}
		c := by[op.invoke.F]
		if c == nil {
			c = &count{}
			by[op.invoke.F] = c
			first[op.invoke.F] = op.invoke.Time
		}
		c.invoked++
		switch op.done.Type {
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
		if c.ok+c.fail == 0 && c.invoked >= statsMinInvocations {
			res.Verdict = Invalid
			res.Anomalies = append(res.Anomalies, Anomaly{Kind: KindNeverDecided, Time: first[f],
				Detail: fmt.Sprintf("%d %s operations were invoked and none was answered ok or failed definitely (%d indeterminate)", c.invoked, f, c.info)})
		}
	}
	res.Detail = strings.Join(parts, "; ")
	if len(fs) == 0 {
		res.Detail = "no client operation in the main phase"
	}
	res.Millis = time.Since(started).Milliseconds()
	return res
}
