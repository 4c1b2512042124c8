package nemesis

import (
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"
)

// reach counts, for each node, the nodes it can talk to both ways (itself included).
func reach(ids []int, c Cut) map[int]int {
	cut := map[[2]int]bool{}
	for _, l := range c.Links {
		cut[l] = true
	}
	out := map[int]int{}
	for _, a := range ids {
		for _, b := range ids {
			if a == b || (!cut[[2]int{a, b}] && !cut[[2]int{b, a}]) {
				out[a]++
			}
		}
	}
	return out
}

func TestPartitionShapesHaveTheirDefiningProperty(t *testing.T) {
	ids := []int{1, 2, 3, 4, 5}
	for seed := int64(0); seed < 50; seed++ {
		r := rand.New(rand.NewSource(seed))
		// halves: exactly a majority side (3) and a minority side (2)
		h := reach(ids, MakeCut(ShapeHalves, ids, 0, r))
		counts := map[int]int{}
		for _, n := range h {
			counts[n]++
		}
		require.Equal(t, map[int]int{3: 3, 2: 2}, counts)
		// one / leader: the victim sees only itself, the rest see four
		c := MakeCut(ShapeLeader, ids, 4, r)
		require.Equal(t, []int{4}, c.Targets)
		require.Equal(t, 1, reach(ids, c)[4])
		require.Equal(t, 4, reach(ids, c)[1])
		// majorities-ring: everyone sees a majority, nobody sees everyone
		for id, n := range reach(ids, MakeCut(ShapeMajoritiesRing, ids, 0, r)) {
			require.Equal(t, 3, n, "n%d", id)
		}
		// bridge: the bridge sees everyone, the others see 3 (their half + bridge)
		b := MakeCut(ShapeBridge, ids, 0, r)
		rb := reach(ids, b)
		require.Equal(t, 5, rb[b.Targets[0]])
		for id, n := range rb {
			if id != b.Targets[0] {
				require.Equal(t, 3, n, "n%d", id)
			}
		}
	}
}

func TestUnknownShapeNamesTheAcceptedOnes(t *testing.T) {
	require.ErrorContains(t, ValidShape("triangle"), "majorities-ring")
	require.NoError(t, ValidShape("random"))
}
