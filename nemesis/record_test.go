package nemesis

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/nemesis/fault"
)

func TestTheExecutorRecordsWhatItPerformsAndReplayReadsItBack(t *testing.T) {
	f := newFake(3, 2)
	path := filepath.Join(t.TempDir(), "schedule.jsonl")
	x, err := NewExec(ExecConfig{Cluster: f, Net: f, Delays: f, Now: func() int64 { return 7 }, Schedule: path})
	require.NoError(t, err)
	_, err = x.Perform(context.Background(), fault.Op{F: fault.Kill, Nodes: []int{2}, Source: "kill"})
	require.NoError(t, err)
	_, err = x.Perform(context.Background(), fault.Op{F: fault.Partition, Links: [][2]int{{1, 3}, {3, 1}}})
	require.NoError(t, err)
	require.NoError(t, x.HealAll(context.Background(), "heal-all", 0))
	require.NoError(t, x.Close())
	ops, err := fault.Read(path)
	require.NoError(t, err)
	var fs []fault.F
	for _, o := range ops {
		fs = append(fs, o.F)
		require.Equal(t, int64(7), o.Time)
	}
	require.Equal(t, []fault.F{fault.Kill, fault.Partition, fault.Heal, fault.Restart}, fs)
	require.Equal(t, []int{2}, ops[3].Nodes, "the heal restarted the killed node")
	require.Equal(t, []string{"kill n2", "restart n2"}, f.actions)
	require.Empty(t, f.blocked)
	_, err = NewExec(ExecConfig{Cluster: f, Net: f, Delays: f, Now: func() int64 { return 0 }, Schedule: path})
	require.Error(t, err, "a recorded schedule is never overwritten")
}

func TestReadScheduleNamesTheBadLineAndField(t *testing.T) {
	path := filepath.Join(t.TempDir(), "schedule.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(`{"time":1,"f":"kill","nodes":[2],"leader":2}`+"\n"+`{"time":2,"f":"explode"}`+"\n"), 0o644))
	_, err := fault.Read(path)
	require.ErrorContains(t, err, "line 2: field f")
	require.ErrorContains(t, err, `"explode"`)
}

func TestReplayStartsAndRetiresTheRecordedSparesAndSendsTheirChanges(t *testing.T) {
	f := newFake(5, 1)
	m := &memberFake{fakeCluster: f, members: []int{1, 2, 3}, spares: map[int]bool{4: true, 5: true}}
	x, _ := execFor(f, m)
	ops := []fault.Op{
		{Time: 1, F: fault.Join, Node: 5, Leader: 1},
		{Time: 2, F: fault.Members, Change: &fault.Change{Op: "replace", Node: 3, With: 5}, Leader: 1},
		{Time: 3, F: fault.Retire, Node: 3, Leader: 1},
	}
	p := &Replay{Ops: ops, Now: func() int64 { return 10 }}
	require.NoError(t, p.Run(context.Background(), x))
	require.Equal(t, []int{5}, m.joined)
	require.Len(t, m.asked, 1)
	require.Equal(t, uint64(3), m.asked[0].Node)
	require.Equal(t, uint64(5), m.asked[0].With)
	require.Equal(t, []int{3}, m.retired)
	require.Zero(t, p.report.Errors)
}

func TestReplayMapsTheRecordedLeaderOntoTheCurrentOne(t *testing.T) {
	f := newFake(3, 3) // n3 leads now; n1 led when recorded
	x, _ := execFor(f, nil)
	p := &Replay{Ops: []fault.Op{{Time: 1, F: fault.Kill, Nodes: []int{1}, Leader: 1}}, Now: func() int64 { return 10 }}
	require.NoError(t, p.Run(context.Background(), x))
	require.Equal(t, []string{"kill n3"}, f.actions, "kill the leader stays kill the leader")
	require.Equal(t, 1, p.Report().Remapped)
}
