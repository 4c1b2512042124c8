package nemesis

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/nemesis/fault"
	"github.com/paxtest/paxtest/target/api"
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

func TestReplayWaitsForTheAcceptedEntryInTheSlotTheEarlierWaitBound(t *testing.T) {
	f := newFake(3, 1)
	f.status[1] = api.Status{Role: "leader", CommitPoint: 20, MaxSlot: 22} // X: slot 21 here
	f.status[2] = api.Status{Role: "follower", CommitPoint: 15, MaxSlot: 21}
	path := filepath.Join(t.TempDir(), "schedule.jsonl")
	x, err := NewExec(ExecConfig{Cluster: f, Net: f, Delays: f, Now: func() int64 { return 0 }, Schedule: path})
	require.NoError(t, err)
	ops := []fault.Op{
		{F: fault.AwaitAccepted, Node: 1, Slot: 6, Sel: &fault.Sel{Set: []string{"L1"}, Bind: []string{"X"}}},
		{F: fault.AwaitAccepted, Node: 2, Slot: 6, Ref: 0, Sel: &fault.Sel{Set: []string{"L2"}, Slot: "X", Bind: []string{"Y"}}},
	}
	require.NoError(t, (&Replay{Ops: ops, Now: func() int64 { return 0 }}).Run(context.Background(), x))
	require.NoError(t, x.Close())
	got, err := fault.Read(path)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, uint64(20), got[0].Slot, "the first wait saw n1's commit point")
	require.Equal(t, uint64(20), got[1].Slot, "the second waited in slot 21, not merely past n2's commit point 15")
	require.Equal(t, 0, got[1].Ref)
}
