package nemesis

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReadScheduleNamesTheBadLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), ScheduleFile)
	require.NoError(t, os.WriteFile(path, []byte(`{"time":1,"op":"kill","node":2,"leader":2}`+"\n"+`{"time":2,"op":"explode"}`+"\n"), 0o644))
	_, err := ReadSchedule(path)
	require.ErrorContains(t, err, "line 2")
	require.ErrorContains(t, err, `"explode"`)
}

func TestReplayStartsAndRetiresTheRecordedSparesAndSendsTheirChanges(t *testing.T) {
	f := newFake(5, 1)
	m := &memberFake{fakeCluster: f, members: []int{1, 2, 3}, spares: map[int]bool{4: true, 5: true}}
	env, _ := envFor(f)
	env.Cluster = m
	steps := []Step{
		{Time: 1, Op: "join", Node: 5, Leader: 1},
		{Time: 2, Op: "members", Note: "replace", Node: 3, Nodes: []int{5}, Leader: 1},
		{Time: 3, Op: "retire", Node: 3, Leader: 1},
	}
	p := &Replay{Steps: steps, Now: func() int64 { return 10 }, Record: func(Fault, error) {}}
	require.NoError(t, p.Run(context.Background(), env))
	require.Equal(t, []int{5}, m.joined)
	require.Len(t, m.asked, 1)
	require.Equal(t, uint64(3), m.asked[0].Node)
	require.Equal(t, uint64(5), m.asked[0].With)
	require.Equal(t, []int{3}, m.retired)
	require.Zero(t, p.report.Errors)
}
