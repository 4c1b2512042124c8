package fault

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOpsRoundTripThroughTheScheduleFormat(t *testing.T) {
	ops := []Op{
		{Time: 1, F: Partition, Sel: &Sel{Shape: "halves"}, Links: [][2]int{{1, 2}, {2, 1}}, Leader: 1, Source: "partition"},
		{Time: 2, F: Kill, Nodes: []int{3, 4}, Leader: 1},
		{Time: 3, F: AwaitAccepted, Node: 2, Slot: 17},
		{Time: 4, F: AwaitCommit, Node: 2, Ref: 2, Slot: 18},
		{Time: 5, F: Members, Change: &Change{Op: "replace", Node: 3, With: 6, OK: true, Members: []int{1, 2, 6}, Slot: 90, Effect: 154}, Ms: 12},
		{Time: 6, F: Note, Note: "stage1: n1 cut off", Source: "figure8", Attempt: 2},
		{Time: 7, F: PowerLoss, Nodes: []int{1, 3}, Tear: true, Note: "n1 dropped 90 unsynced bytes of 1 files", Source: "power-loss"},
	}
	var b bytes.Buffer
	require.NoError(t, Encode(&b, ops))
	got, err := Decode(&b)
	require.NoError(t, err)
	require.Equal(t, ops, got)
}

func TestDecodeRefusesWhatItDoesNotUnderstandNamingLineAndField(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{`{"time":1,"f":"kill","nodes":[1]}` + "\n" + `{"time":2,"f":"explode"}`, `line 2: field f: unknown op "explode"`},
		{`{"time":1,"f":"kill","victims":[1]}`, `line 1: json: unknown field "victims"`},
		{`{"time":-5,"f":"kill"}`, "line 1: field time: negative"},
		{`{"time":1,"f":"kill","nodes":[1]`, "line 1: unexpected EOF"},
	} {
		_, err := Decode(strings.NewReader(tc.text))
		require.ErrorContains(t, err, tc.want, tc.text)
	}
}

func TestIntervalsLastFromTheFaultToWhatLiftsIt(t *testing.T) {
	ops := []Op{
		{Time: 1, F: Partition, Links: [][2]int{{1, 2}}},
		{Time: 2, F: Kill, Nodes: []int{3, 4}},
		{Time: 3, F: Partition, Links: [][2]int{{1, 5}}}, // replaces the cut
		{Time: 4, F: Restart, Nodes: []int{3}},
		{Time: 5, F: Heal},
		{Time: 6, F: Pause, Nodes: []int{2}, Source: "zombie", Attempt: 1},
		{Time: 7, F: Note, Note: "zombie: n2 paused", Source: "zombie", Attempt: 1},
		{Time: 8, F: Resume, Nodes: []int{2}, Source: "zombie", Attempt: 1},
		{Time: 8, F: PowerLoss, Nodes: []int{1, 5}},
		{Time: 9, F: Restart, Nodes: []int{1, 5}},
		{Time: 2, F: Corrupt, Node: 3, Damage: &Damage{Kind: BitFlip, File: "wal.log"}},
		{Time: 3, F: Corrupt, Node: 4, Note: "nothing to damage"}, // changed nothing
		{Time: 5, F: Repair, Node: 3},
		{Time: 6, F: Corrupt, Node: 2, Damage: &Damage{Kind: BitFlip, File: "wal.log"}},
		{Time: 7, F: Repair, Node: 2, Note: "cannot be taken back"}, // the damage stays
	}
	got := Intervals(ops, 10)
	var short []string
	for _, iv := range got {
		short = append(short, iv.Kind+" "+Names(iv.Nodes)+" "+string(rune('0'+iv.Start))+"-"+string(rune('0'+iv.End)))
	}
	require.ElementsMatch(t, []string{
		"partition n1 n2 1-3", "partition n1 n5 3-5", "kill n3 2-4", "kill n4 2-:", "pause n2 6-8", "zombie n2 6-8",
		"power-loss n1 8-9", "power-loss n5 8-9", "corrupt n3 2-5", "corrupt n2 6-:",
	}, short, "n4 stays down to the end (10, ':'); a restart ends a power loss as it ends a kill; damage lasts until it is taken back")
	for _, iv := range got {
		if iv.Kind == "zombie" {
			require.Equal(t, "zombie: n2 paused", iv.Detail)
		}
	}
}

func TestStartsIsTrueForOpsThatPutAFaultInForce(t *testing.T) {
	require.True(t, Op{F: Partition, Links: [][2]int{{1, 2}}}.Starts())
	require.False(t, Op{F: Partition}.Starts(), "an empty cut lifts the partition")
	require.True(t, Op{F: Kill, Nodes: []int{1}}.Starts())
	require.False(t, Op{F: Restart, Nodes: []int{1}}.Starts())
	require.False(t, Op{F: AwaitLeader}.Starts())
	require.True(t, Op{F: PowerLoss, Nodes: []int{1}}.Starts())
	require.Equal(t, "power loss of n1: n1 dropped 7 unsynced bytes of 1 files", Op{F: PowerLoss, Nodes: []int{1}, Note: "n1 dropped 7 unsynced bytes of 1 files"}.Describe())
}
