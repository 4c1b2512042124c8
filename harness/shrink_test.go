package harness

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/nemesis/fault"
)

func TestRemovingStepsRenumbersTheObservationAWaitRefersTo(t *testing.T) {
	steps := []fault.Op{
		{F: fault.Partition, Time: 1},
		{F: fault.Observe, Node: 2, Time: 2},
		{F: fault.Kill, Node: 2, Time: 3},
		{F: fault.AwaitCommit, Node: 3, Ref: 1, Time: 4},
	}
	got := without(steps, 0, 1)
	require.Equal(t, []string{"observe", "kill", "await-commit"}, ops(got))
	require.Equal(t, 0, got[2].Ref, "the wait still refers to the observation")

	got = without(steps, 1, 2)
	require.Equal(t, -1, got[2].Ref, "a wait whose observation is gone waits for nothing")
	require.Equal(t, 1, steps[3].Ref, "the input is left alone")
}

func TestUpToKeepsOnlyStepsBeforeTheCutoff(t *testing.T) {
	steps := []fault.Op{{F: fault.Observe, Time: 10}, {F: fault.Kill, Time: 20}, {F: fault.AwaitCommit, Ref: 0, Time: 30}}
	require.Equal(t, []string{"observe", "kill"}, ops(upTo(steps, 25)))
	require.Len(t, upTo(steps, 30), 3)
}

func TestSplitCoversEveryIndexOnce(t *testing.T) {
	for n := 1; n < 30; n++ {
		for k := 2; k <= n; k++ {
			seen := make([]int, n)
			for _, c := range split(n, k) {
				for i := c[0]; i < c[1]; i++ {
					seen[i]++
				}
			}
			for i, c := range seen {
				require.Equal(t, 1, c, "n=%d k=%d index %d", n, k, i)
			}
		}
	}
}

func TestTimingShrinksKeepOrderAndOnlyShortenLongGaps(t *testing.T) {
	s := time.Second
	steps := []fault.Op{{Time: int64(5 * s)}, {Time: int64(5*s + 100*time.Millisecond)}, {Time: int64(9 * s)}}
	shifted := shiftStart(steps, s)
	require.Equal(t, int64(s), shifted[0].Time)
	require.Equal(t, int64(100*time.Millisecond), shifted[1].Time-shifted[0].Time)

	h := halveGaps(steps, 500*time.Millisecond)
	require.Equal(t, steps[0].Time, h[0].Time)
	require.Equal(t, int64(100*time.Millisecond), h[1].Time-h[0].Time, "a short gap is kept")
	require.Equal(t, (steps[2].Time-steps[1].Time)/2, h[2].Time-h[1].Time, "a long gap is halved")
	require.Nil(t, halveGaps(h[:2], 500*time.Millisecond), "nothing left to halve")
}

func ops(steps []fault.Op) []string {
	var out []string
	for _, s := range steps {
		out = append(out, string(s.F))
	}
	return out
}

func TestShrinkingRemovesFaultStepsAndKeepsTheWaits(t *testing.T) {
	steps := []fault.Op{
		{F: fault.AwaitLeader}, {F: fault.Partition}, {F: fault.AwaitAccepted}, {F: fault.Kill}, {F: fault.Note}, {F: fault.AwaitCommit, Ref: 2},
	}
	require.Equal(t, 2, faults(steps))
	require.Equal(t, []int{1, 3}, faultIndices(steps))
	got := withoutIndices(steps, []int{1})
	require.Equal(t, []string{"await-leader", "await-accepted", "kill", "note", "await-commit"}, ops(got))
	require.Equal(t, 1, got[4].Ref, "the wait still refers to its observation")
}
