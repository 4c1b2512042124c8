package checker

import (
	"fmt"
	"strings"
	"time"

	"github.com/paxtest/paxtest/checker/history"
)

// KindDidNotRecover: a node, or the whole cluster, did not serve again
// within the bound after every fault was healed — a liveness finding, as
// never-succeeded is, kept apart from the safety violations.
const KindDidNotRecover = "did-not-recover"

// EventDidNotRecover is the nemesis event a run records when a node in
// play did not serve again within the bound after the final heal; its
// targets name the node, its detail the fault before and its last log
// lines.
const EventDidNotRecover = "did-not-recover"

// IsLiveness reports whether an anomaly kind is a liveness finding (the
// system stopped serving) rather than a safety violation.
func IsLiveness(kind string) bool { return kind == KindDidNotRecover || kind == KindNeverSucceeded }

// CheckLiveness turns the run's recovery findings into anomalies: every
// node that did not serve again after the final heal, and final reads of
// which none succeeded (the cluster did not serve again), reported once.
func CheckLiveness(h *History) Result {
	started := time.Now()
	res := Result{Verdict: Valid}
	for _, e := range h.Nemesis {
		if e.F == EventDidNotRecover {
			res.Anomalies = append(res.Anomalies, Anomaly{Kind: KindDidNotRecover, Time: e.Time, Detail: e.Detail})
		}
	}
	final, finalOK := 0, 0
	for i := range h.Ops {
		if op := &h.Ops[i]; op.Final {
			final++
			if op.Type == history.OK {
				finalOK++
			}
		}
	}
	res.Checked = len(res.Anomalies) + final
	if final > 0 && finalOK == 0 {
		msg := fmt.Sprintf("none of the %d final reads succeeded once every fault was healed: the cluster did not serve again", final)
		if len(res.Anomalies) > 0 {
			res.Anomalies[0].Detail += "; " + msg
		} else {
			res.Anomalies = append(res.Anomalies, Anomaly{Kind: KindDidNotRecover, Time: h.Last, Detail: msg})
		}
	}
	switch {
	case len(res.Anomalies) > 0:
		res.Verdict = Invalid
		var parts []string
		for _, a := range res.Anomalies {
			parts = append(parts, firstLine(a.Detail))
		}
		res.Detail = strings.Join(parts, "; ")
	case final > 0:
		res.Detail = fmt.Sprintf("every node served again after the final heal; %d of %d final reads succeeded", finalOK, final)
	default:
		res.Detail = "every node served again after the final heal"
	}
	res.Millis = time.Since(started).Milliseconds()
	return res
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
