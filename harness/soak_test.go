package harness

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The shards of one soak are places in one rotation: together they run
// each seed once, none twice, and each run keeps the nemesis, workload and
// bug switch the unsharded soak would give it.
func TestSoakShardsRunDisjointSeedsThatTogetherCoverTheRotation(t *testing.T) {
	base := SoakOptions{Seed: 100, TimeLimit: time.Minute, Nodes: 5, SelfCheck: 4,
		Nemeses: []string{"partition", "kill", "all"}, Workloads: []string{"register", "append"}}
	whole := map[int64]Options{}
	for i := 0; i < 30; i++ {
		ro, bug := base.runOptions(i)
		ro.Bugs = bug + "|" + ro.Bugs
		whole[ro.Seed] = ro
	}
	seen := map[int64]int{}
	for i := 1; i <= 3; i++ {
		o := base
		o.Shard = Shard{I: i, N: 3}
		for k := 0; k < 10; k++ {
			ro, bug := o.runOptions(o.Shard.index(k))
			ro.Bugs = bug + "|" + ro.Bugs
			require.Equal(t, whole[ro.Seed], ro, "shard %d run %d is the rotation's run of seed %d", i, k, ro.Seed)
			seen[ro.Seed]++
		}
	}
	require.Len(t, seen, 30, "every seed of the rotation's first 30 runs")
	for s, n := range seen {
		require.Equal(t, 1, n, "seed %d run once", s)
	}
}

func TestParseShardRefusesWhatIsNotIOfN(t *testing.T) {
	sh, err := ParseShard("2/3")
	require.NoError(t, err)
	require.Equal(t, Shard{I: 2, N: 3}, sh)
	for _, bad := range []string{"0/3", "4/3", "3", "a/b", "1/0", "1/3x", "-1/3"} {
		_, err := ParseShard(bad)
		var ue UsageError
		require.ErrorAs(t, err, &ue, bad)
		require.ErrorContains(t, err, "want i/n", bad)
	}
	_, err = Soak(context.Background(), SoakOptions{Duration: time.Minute, TimeLimit: time.Second, Shard: Shard{I: 1, N: 2}})
	require.ErrorContains(t, err, "--shard needs --seed", "shards with random seeds could overlap")
}
