package harness

import (
	"strings"
	"testing"
	"time"

	"github.com/paxtest/paxtest/nemesis"
	"github.com/paxtest/paxtest/target/bugs"
	"github.com/stretchr/testify/require"
)

func TestDetectGateFailsOnAMissedSwitchOrAFalseAlarm(t *testing.T) {
	ok := []DetectCell{
		{Bug: "reconfirm-old-ballot", Nemesis: "figure8", Runs: 2, Detected: 2},
		{Bug: "stale-read", Nemesis: "partition", Runs: 2, Detected: 0},
		{Bug: "stale-read", Nemesis: "pause", Runs: 2, Detected: 1},
		{Bug: "none", Nemesis: "all", Runs: 2},
	}
	require.Empty(t, DetectGate(ok), "caught by one of its nemeses is enough")
	missed := append(ok[:0:0], ok...)
	missed[2].Detected = 0
	require.Equal(t, []string{"bug switch stale-read was not caught by any nemesis"}, DetectGate(missed))
	alarm := append(ok[:0:0], ok...)
	alarm[3].Detected = 1
	require.Len(t, DetectGate(alarm), 1)
	require.Contains(t, DetectGate(alarm)[0], "correct build raised 1 alarms")
}

func TestDetectTableReportsRatiosMediansAndFalseAlarms(t *testing.T) {
	cells := []DetectCell{
		{Bug: "no-fsync", Nemesis: "kill", Nodes: 3, Runs: 3, Detected: 2, Seconds: []float64{9, 3}, Seeds: []int64{1, 2, 3}},
		{Bug: "none", Nemesis: "all", Nodes: 5, Runs: 3, Seeds: []int64{1, 2, 3}},
	}
	cells[0].Median = median(cells[0].Seconds)
	table := DetectTable(cells, 3, 30*time.Second)
	require.Contains(t, table, "| no-fsync | kill | 3 | 2/3 | 6.0 s |")
	require.Contains(t, table, "| none | all | 5 | 0 false alarms /3 | — |")
	require.Equal(t, 2.0, median([]float64{3, 1, 2}))
}

func TestASwitchWithNoLiveNemesisIsListedNotRunAndDoesNotFailTheGate(t *testing.T) {
	cells := []DetectCell{{Bug: "future-switch"}, {Bug: "none", Nemesis: "all", Nodes: 5, Runs: 1, Seeds: []int64{1}}}
	require.Empty(t, DetectGate(cells))
	require.Contains(t, DetectTable(cells, 1, time.Second), "| future-switch | — | | not run: no live nemesis exposes it yet")
}

func TestEveryNemesisTheSwitchTableNamesIsOne(t *testing.T) {
	for _, sw := range bugs.All() {
		for _, n := range sw.Nemeses {
			_, err := nemesis.Parse(strings.ReplaceAll(n, "+", ","), nemesis.ShapeRandom)
			require.NoError(t, err, "%s: %s", sw.Name, n)
		}
	}
	for _, n := range correctBuildNemeses {
		_, err := nemesis.Parse(strings.ReplaceAll(n, "+", ","), nemesis.ShapeRandom)
		require.NoError(t, err, n)
	}
}
