package checker

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/harness/history"
)

func TestStatsFailsAKindOfOperationThatWasNeverDecided(t *testing.T) {
	var h []history.Event
	add := func(p int, f, typ string) {
		h = append(h, history.Event{Process: history.Process(p), Type: history.Invoke, F: f},
			history.Event{Process: history.Process(p), Type: typ, F: f})
	}
	for i := 0; i < 30; i++ {
		add(1, "get", history.OK)
		add(2, "put", history.Info)
		add(3, "cas", history.Fail) // cas-mismatch: definite
	}
	res := CheckStats(h)
	require.Equal(t, Invalid, res.Verdict)
	require.Len(t, res.Anomalies, 1)
	require.Equal(t, KindNeverDecided, res.Anomalies[0].Kind)
	require.Contains(t, res.Anomalies[0].Detail, "30 put operations")

	// a few undecided invocations fall in a fault's window: not evidence
	res = CheckStats(h[:2*3*5])
	require.Equal(t, Valid, res.Verdict, res.Detail)
	require.Contains(t, res.Detail, "put 0 ok/0 fail/5 info")
}
