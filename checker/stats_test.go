package checker

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/checker/history"
)

func TestStatsFailsAKindOfOperationThatNeverSucceededAndLeavesFinalReadsToLiveness(t *testing.T) {
	var h []history.Event
	add := func(p int, f, typ string, final bool) {
		v := json.RawMessage(`"1"`)
		if f == "get" {
			v = nil
		}
		if f == "cas" {
			v = json.RawMessage(`["1","2"]`)
		}
		h = append(h, history.Event{Process: history.Process(p), Type: history.Invoke, F: f, Final: final, Value: v},
			history.Event{Process: history.Process(p), Type: typ, F: f, Final: final, Value: v})
	}
	for i := 0; i < 30; i++ {
		add(1, "get", history.OK, false)
		add(2, "put", history.Info, false)
		add(3, "cas", history.Fail, false)
		add(4, "get", history.Fail, true) // no final read served
	}
	all, err := NewHistory("t", "register", h)
	require.NoError(t, err)
	res := CheckStats(all)
	require.Equal(t, Invalid, res.Verdict)
	var what []string
	for _, a := range res.Anomalies {
		require.Equal(t, KindNeverSucceeded, a.Kind)
		what = append(what, a.Detail)
	}
	require.Equal(t, []string{
		"30 cas operations were invoked and none succeeded (30 failed, 0 indeterminate)",
		"30 put operations were invoked and none succeeded (0 failed, 30 indeterminate)",
	}, what)

	// the final reads that all failed are liveness's finding, once
	live := CheckLiveness(all)
	require.Equal(t, Invalid, live.Verdict)
	require.Len(t, live.Anomalies, 1)
	require.Equal(t, KindDidNotRecover, live.Anomalies[0].Kind)
	require.Contains(t, live.Anomalies[0].Detail, "none of the 30 final reads succeeded")

	// a few unsuccessful invocations fall in a fault's window: not evidence
	some, err := NewHistory("t", "register", h[:2*4*5])
	require.NoError(t, err)
	res = CheckStats(some)
	require.Equal(t, Valid, res.Verdict, res.Detail)
	require.Contains(t, res.Detail, "put 0 ok/0 fail/5 info")
}
