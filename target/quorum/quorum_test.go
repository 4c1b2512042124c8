package quorum

import (
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMajorityOfSmallClusters(t *testing.T) {
	for _, tc := range []struct{ n, want int }{{1, 1}, {2, 2}, {3, 2}, {4, 3}, {5, 3}, {7, 4}} {
		require.Equal(t, tc.want, Majority(tc.n), "n=%d", tc.n)
	}
}

// Any two majorities of the same cluster share at least one acceptor: checked
// over random subsets, which is what makes one ballot's choice visible to the
// next ballot's phase 1.
func TestAnyTwoMajoritiesIntersect(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 5000; i++ {
		n := 1 + r.Intn(9)
		a, b := randomSubset(r, n), randomSubset(r, n)
		if !Reached(len(a), n) || !Reached(len(b), n) {
			continue
		}
		shared := false
		for x := range a {
			if b[x] {
				shared = true
			}
		}
		require.True(t, shared, "two majorities of %d disjoint: %v %v", n, a, b)
	}
}

// Two disjoint sets can never both reach a quorum, and a majority of failures
// is never tolerated.
func TestDisjointSetsNeverBothDecide(t *testing.T) {
	for n := 1; n <= 11; n++ {
		for k := 0; k <= n; k++ {
			require.False(t, Reached(k, n) && Reached(n-k, n), "n=%d k=%d", n, k)
		}
		require.Less(t, Tolerates(n), Majority(n))
		require.Equal(t, n, Tolerates(n)+Majority(n))
	}
}

func randomSubset(r *rand.Rand, n int) map[int]bool {
	s := map[int]bool{}
	for i := 0; i < n; i++ {
		if r.Intn(2) == 0 {
			s[i] = true
		}
	}
	return s
}
