package checker

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAdvisingHugePagesLeavesASlicesContentsAndLengthAsTheyWere(t *testing.T) {
	for _, n := range []int{0, 1, 4 << 20 / 192, 4<<20/192 + 1, 1 << 16} {
		ops := make([]Op, 0, n)
		for i := 0; i < n/2; i++ {
			ops = append(ops, Op{Key: "k", Call: int64(i)})
		}
		adviseHuge(ops)
		require.Len(t, ops, n/2)
		require.Equal(t, n, cap(ops))
		for i := range ops {
			require.Equal(t, int64(i), ops[i].Call)
		}
		ops = append(ops, make([]Op, n-n/2)...) // the advised memory beyond the length is usable
		require.Len(t, ops, n)
	}
}
