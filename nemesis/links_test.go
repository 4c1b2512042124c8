package nemesis

import (
	"context"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/nemesis/fault"
)

func TestSlowLinksHarshenOneNodesLinksWithinTheirBoundsAndStopClearsThem(t *testing.T) {
	for seed := int64(0); seed < 50; seed++ {
		f := newFake(5, 1)
		x, ops := execFor(f, nil)
		x.Rand = rand.New(rand.NewSource(seed))
		require.NoError(t, (&SlowLinks{}).Start(context.Background(), x))
		op := (*ops)[len(*ops)-1]
		require.Equal(t, fault.Delay, op.F)
		require.GreaterOrEqual(t, op.Ms, int64(50))
		require.LessOrEqual(t, op.Ms, int64(300))
		require.LessOrEqual(t, op.JitterMs, op.Ms/2)
		if op.Rate != 0 {
			require.Contains(t, []int64{32 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10}, op.Rate)
		}
		from := op.Links[0][0]
		oneWay := true
		for _, l := range op.Links {
			require.True(t, l[0] == from || l[1] == from, "seed %d: every link touches n%d: %v", seed, from, op.Links)
			oneWay = oneWay && l[0] == from
		}
		require.Len(t, op.Links, map[bool]int{true: 4, false: 8}[oneWay], "seed %d: what it sends, or both ways", seed)
		require.NoError(t, (&SlowLinks{}).Stop(context.Background(), x))
		require.Empty(t, (*ops)[len(*ops)-1].Links, "stop clears every delay")
	}
}

// resetFake is a fault layer that can reset connections.
type resetFake struct {
	*fakeCluster
	reset [][2]int
}

func (r *resetFake) Reset(links [][2]int) error { r.reset = links; return nil }

func TestResetLinksResetsEveryConnectionOfOneNodeBothWays(t *testing.T) {
	f := newFake(3, 1)
	x, ops := execFor(f, nil)
	require.NoError(t, (&ResetLinks{}).Start(context.Background(), x))
	require.Equal(t, fault.Note, (*ops)[len(*ops)-1].F, "a layer that cannot reset: skipped, and said")
	require.Contains(t, (*ops)[len(*ops)-1].Note, "--net proxy")

	rf := &resetFake{fakeCluster: f}
	x.Net = rf
	require.NoError(t, (&ResetLinks{}).Start(context.Background(), x))
	op := (*ops)[len(*ops)-1]
	require.Equal(t, fault.Reset, op.F)
	require.Len(t, op.Links, 4, "to and from one node of three")
	require.Equal(t, op.Links, rf.reset)
}
