package harness

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWindowTableReportsRatiosToTheLastWindow(t *testing.T) {
	rows := []WindowRow{{Window: 1, OpsPerSec: 500, Ratio: 0.25, Verdict: "valid"}, {Window: 64, OpsPerSec: 2000, Ratio: 1, Verdict: "valid"}}
	table := WindowTable(rows, WindowOptions{Nodes: 5, TimeLimit: 20 * time.Second, Seed: 1})
	require.Contains(t, table, "| α | acknowledged ops/s | ratio to α = 64 |")
	require.Contains(t, table, "| 1 | 500 | 0.25 | valid |")
	require.Contains(t, table, "10 clients", "the default concurrency is named")
	require.Contains(t, table, "median of 1 interleaved rounds")
}

func TestBenchWindowRejectsAWindowBelowOne(t *testing.T) {
	_, err := BenchWindow(context.Background(), WindowOptions{Windows: []int{0, 64}, TimeLimit: time.Second})
	require.ErrorContains(t, err, "0 is not a positive window")
}
