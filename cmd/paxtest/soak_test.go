package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/reports"
)

// Two shards of one soak, run as two machines would (each its own store),
// run disjoint seeds; merged, one store holds every run, one summary and
// one JUnit file list them all, and serve's listing shows them.
func TestSoakShardsRunDisjointSeedsAndMergeIntoOneStoreSummaryAndJUnit(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end soak skipped in -short mode")
	}
	dir := t.TempDir()
	var stores []string
	for _, shard := range []string{"1/2", "2/2"} {
		store := filepath.Join(dir, "shard-"+shard[:1])
		r := paxtest(t, "soak", "--duration", "7s", "--time-limit", "4s", "--nodes", "3", "--nemeses", "kill",
			"--workloads", "register", "--seed", "40", "--shard", shard, "--store", store)
		require.Equal(t, 0, r.code, "shard %s: stdout:\n%s\nstderr:\n%s", shard, r.stdout, r.stderr)
		stores = append(stores, store)
	}
	into := filepath.Join(dir, "merged")
	junit := filepath.Join(dir, "junit.xml")
	r := paxtest(t, append([]string{"soak", "merge", "--into", into, "--junit", junit}, stores...)...)
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "2 runs of 2 stores")

	sums, err := filepath.Glob(filepath.Join(into, "soak-*", "summary.json"))
	require.NoError(t, err)
	require.Len(t, sums, 1)
	b, err := os.ReadFile(sums[0])
	require.NoError(t, err)
	var runs []reports.SoakRun
	require.NoError(t, json.Unmarshal(b, &runs))
	require.Len(t, runs, 2)
	require.Equal(t, []int64{40, 41}, []int64{runs[0].Seed, runs[1].Seed}, "shard 1 ran seed 40, shard 2 seed 41")
	for _, run := range runs {
		require.True(t, strings.HasPrefix(run.Dir, into), "the merged summary points into the merged store: %s", run.Dir)
		require.FileExists(t, filepath.Join(run.Dir, "results.json"))
	}
	x, err := os.ReadFile(junit)
	require.NoError(t, err)
	require.Equal(t, 2, strings.Count(string(x), "<testcase "), "one JUnit file, every shard's runs")
	listed, err := reports.ListRuns(into)
	require.NoError(t, err)
	require.Len(t, listed, 2, "serve --store merged shows both shards' runs")

	r = paxtest(t, "soak", "merge", "--into", into, stores[0])
	require.Equal(t, 254, r.code, "a run already merged is never overwritten")
	require.Contains(t, r.stderr, "is already there")
	r = paxtest(t, "soak", "merge", "--into", filepath.Join(dir, "other"), dir)
	require.Equal(t, 254, r.code)
	require.Contains(t, r.stderr, "holds no soak summary")
	left := 0
	for _, s := range stores {
		got, err := reports.ListRuns(s)
		require.NoError(t, err)
		left += len(got)
	}
	require.Equal(t, 2, left, "the shards' stores are only read")
}
