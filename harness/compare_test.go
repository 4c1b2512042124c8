package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// compareRun writes a run directory: two writes acknowledged before the
// leader's kill at 1 s (latencies 10 and 30 ms), a write invoked before
// it and acknowledged after, and writes invoked after it.
func compareRun(t *testing.T) string {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"workload":"register"}`), 0o644))
	ev := func(i int, ms float64, p any, typ, f, v string) string {
		return fmt.Sprintf(`{"index":%d,"time":%d,"process":%v,"type":"%s","f":"%s","key":"k","value":%s}`, i, int64(ms*1e6), p, typ, f, v)
	}
	lines := []string{
		ev(0, 0, 1, "invoke", "put", `"1"`), ev(1, 10, 1, "ok", "put", `"1"`),
		ev(2, 500, 1, "invoke", "put", `"2"`), ev(3, 530, 1, "ok", "put", `"2"`),
		ev(4, 900, 2, "invoke", "put", `"3"`),
		ev(5, 1000, `"nemesis"`, "info", "kill", "null"),
		ev(6, 1100, 3, "invoke", "get", "null"), ev(7, 1200, 3, "ok", "get", `"3"`),
		ev(8, 1300, 1, "invoke", "cas", `{"from":"3","to":"4"}`), ev(9, 2500, 1, "ok", "cas", `{"from":"3","to":"4"}`),
		ev(10, 2600, 2, "ok", "put", `"3"`),
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "history.jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	return dir
}

func TestACompareRoundMeasuresBeforeTheKillAndTheFirstWriteAcknowledgedAfterIt(t *testing.T) {
	r, err := measureRound(compareRun(t))
	require.NoError(t, err)
	require.InDelta(t, 2.0, r.OpsPerSec, 1e-9, "two acknowledged in the second before the kill")
	require.InDelta(t, 10.0, r.P50Ms, 1e-9)
	require.InDelta(t, 30.0, r.P99Ms, 1e-9)
	require.InDelta(t, 1.5, r.UnavailSec, 1e-9, "the cas invoked after the kill, acknowledged at 2.5 s; not the get, nor the put invoked before")
}

func TestCompareRatiosAreToTheFirstSystemOnTheSameSize(t *testing.T) {
	o := CompareOptions{DBs: []string{"a", "b"}, Nodes: []int{3}}
	rows := map[compareKey]*CompareRow{
		{"a", 3}: {DB: "a", Nodes: 3, Rounds: []CompareRound{{100, 2, 10, 1}, {300, 4, 30, 3}, {200, 3, 20, 2}}},
		{"b", 3}: {DB: "b", Nodes: 3, Rounds: []CompareRound{{100, 6, 40, -1}, {100, 6, 40, 4}}},
	}
	out := compareRows(o, rows)
	require.Len(t, out, 2)
	require.Equal(t, 200.0, out[0].OpsPerSec, "the median of the rounds")
	require.Equal(t, 1.0, out[0].Ratios.OpsPerSec)
	require.Equal(t, 0.5, out[1].Ratios.OpsPerSec)
	require.Equal(t, 2.0, out[1].Ratios.P50)
	require.Equal(t, 2.0, out[1].Ratios.Unavail, "a round without a write after the kill is left out, not counted as 0")
	require.Contains(t, CompareTable(out), "| 3 | b | 100 |")
}
