package reports

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/checker"
	"github.com/paxtest/paxtest/checker/history"
	"github.com/paxtest/paxtest/nemesis/fault"
	"github.com/paxtest/paxtest/target/api"
)

func TestIndexIsSelfContainedAndShowsVerdictAnomalyAndMatrix(t *testing.T) {
	x := `{"client":"p1","seq":3,"op":"put","key":"r0-0","value":"7"}`
	y := `{"client":"p2","seq":9,"op":"put","key":"r0-0","value":"8"}`
	logs := []checker.LogSample{
		{Time: 1e9, Node: "n1", Entries: []api.LogEntry{{Index: 2, Ballot: "4.1", Kind: "command", Digest: "dx", Value: x}}},
		{Time: 2e9, Node: "n2", Entries: []api.LogEntry{{Index: 2, Ballot: "3.2", Kind: "command", Digest: "dy", Value: y}}},
	}
	res := Results{Verdict: checker.Invalid, Dir: "store/x/1", Config: json.RawMessage(`{"nodes":5}`),
		Checkers: map[string]checker.Result{"log-agreement": checker.CheckLogAgreement(nil, logs)}}
	res.Anomalies = res.Checkers["log-agreement"].Anomalies
	h := []history.Event{
		{Time: 0, Process: 0, Type: history.Invoke, F: "put", Key: "r0-0", Value: json.RawMessage(`"7"`)},
		{Time: 5e8, Process: 0, Type: history.OK, F: "put", Key: "r0-0", Value: json.RawMessage(`"7"`)},
		nemesisEvent(fault.Op{Time: 6e8, F: fault.Kill, Nodes: []int{2}}),
	}
	var buf bytes.Buffer
	hist, err := checker.NewHistory("t", "register", h)
	require.NoError(t, err)
	require.NoError(t, RenderIndex(&buf, Page{Results: res, History: hist, Logs: logs}))
	page := buf.String()
	require.Contains(t, page, "<h1>INVALID</h1>")
	require.Contains(t, page, "committed-then-overwritten × 1")
	require.Contains(t, page, `"matrices":[{"index":2`)
	require.Contains(t, page, "put r0-0=8 (p2#9)", "the overwriting command, shortened, in the matrix data")
	require.Contains(t, page, `"faults":[{"start":0.6,"end":0.6,"label":"kill n2"}]`, "a kill still in force lasts until the last event")
	require.False(t, regexp.MustCompile(`(src|href)="https?://`).MatchString(page), "the page loads nothing from the network")
	require.Contains(t, page, "uPlot", "the charting library is inlined")
}
