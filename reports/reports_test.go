package reports

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/checker"
	"github.com/paxtest/paxtest/checker/history"
	"github.com/paxtest/paxtest/nemesis/fault"
)

// nemesisEvent is a fault op as the runner writes it to the history.
func nemesisEvent(op fault.Op) history.Event {
	v, err := json.Marshal(op)
	if err != nil {
		panic(err)
	}
	return history.Event{Time: op.Time, Process: history.NemesisProcess, Type: history.Info, F: string(op.F), Value: v, Targets: op.Touched(), Detail: op.Describe()}
}

func TestSummaryCountsOperationsRatesAndFaults(t *testing.T) {
	s := int64(1e9)
	h := []history.Event{
		{Time: 0, Process: 0, Type: history.Invoke, F: "put", Value: json.RawMessage(`"1"`)},
		{Time: 1 * s, Process: 0, Type: history.OK, F: "put", Value: json.RawMessage(`"1"`)},
		nemesisEvent(fault.Op{Time: 2 * s, F: fault.Kill, Nodes: []int{3}, Source: "leader-kill"}),
		{Time: 2 * s, Process: 1, Type: history.Invoke, F: "get"}, // invoked at the kill itself: not after it
		{Time: 3 * s, Process: 1, Type: history.Info, F: "get"},
		{Time: 3 * s, Process: 0, Type: history.Invoke, F: "put", Value: json.RawMessage(`"2"`)},
		{Time: 5 * s, Process: 0, Type: history.OK, F: "put", Value: json.RawMessage(`"2"`)},
		{Time: 6 * s, Process: 0, Type: history.Invoke, F: "put", Value: json.RawMessage(`"3"`)},
		{Time: 7 * s, Process: 0, Type: history.Fail, F: "put", Value: json.RawMessage(`"3"`)},
		{Time: 8 * s, Process: 7, Type: history.Invoke, F: "get", Final: true},
		{Time: 9 * s, Process: 7, Type: history.OK, F: "get", Final: true},
	}
	hist, err := checker.NewHistory("t", "register", h)
	require.NoError(t, err)
	ops, final, rate, secs, nem := Summarize(hist)
	require.Equal(t, OpCounts{OK: 2, Fail: 1, Info: 1, Total: 4}, ops)
	require.Equal(t, OpCounts{OK: 1, Total: 1}, final)
	require.InDelta(t, 2.0/7.0, rate, 1e-9, "acknowledged ops over the main phase's span")
	require.InDelta(t, 9.0, secs, 1e-9)
	require.Len(t, nem, 1)
}
