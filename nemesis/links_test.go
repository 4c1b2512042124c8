package nemesis

import (
	"context"
	"fmt"
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

// damager records the damage it was asked for, drawing nothing; with
// refuse, a damaged node of cluster exits as it starts until repaired.
type damager struct {
	nothing  bool // every damage finds no file with data
	stuck    bool // no damage can be taken back
	asked    []fault.Damage
	repaired []int
	checks   bool
	refuse   *fakeCluster
}

func (d *damager) Corrupt(id int, dm *fault.Damage, _ *rand.Rand) error {
	if d.nothing {
		return fmt.Errorf("%w: n%d synced nothing yet", ErrNothingToDamage, id)
	}
	if dm.File == "" {
		dm.File = "drawn.log"
	}
	d.asked = append(d.asked, *dm)
	if d.refuse != nil {
		d.refuse.failRestart[id] = true
	}
	return nil
}

func (d *damager) Repair(id int) error {
	if d.stuck {
		return fmt.Errorf("n%d's snapshot was set aside", id)
	}
	d.repaired = append(d.repaired, id)
	if d.refuse != nil {
		delete(d.refuse.failRestart, id)
	}
	return nil
}

func (d *damager) Checked() bool { return d.checks }

func TestCorruptionDamagesACheckedFileAndStopTakesBackWhatTheNodeRefused(t *testing.T) {
	f := newFake(3, 1)
	f.failRestart = map[int]bool{}
	x, ops := execFor(f, nil)
	d := &damager{refuse: f}
	x.Data = d
	require.NoError(t, (&Corruption{}).Start(context.Background(), x))
	require.Equal(t, fault.Note, (*ops)[len(*ops)-1].F, "a system that names no checked file: skipped, and said")
	require.Contains(t, (*ops)[len(*ops)-1].Note, "checked_files")
	require.Empty(t, d.asked)

	d.checks = true
	c := &Corruption{}
	require.NoError(t, c.Start(context.Background(), x))
	last := (*ops)[len(*ops)-3:]
	require.Equal(t, []fault.F{fault.Kill, fault.Corrupt, fault.Restart}, []fault.F{last[0].F, last[1].F, last[2].F})
	node := last[1].Node
	require.Equal(t, []int{node}, last[2].Stopped, "the node refused its damaged data")
	require.True(t, f.down[node])

	require.NoError(t, c.Start(context.Background(), x))
	require.Equal(t, fault.Note, (*ops)[len(*ops)-1].F, "one more refusal of three would leave no majority")

	require.NoError(t, c.Stop(context.Background(), x))
	last = (*ops)[len(*ops)-2:]
	require.Equal(t, fault.Repair, last[0].F)
	require.Equal(t, node, last[0].Node)
	require.Equal(t, fault.Restart, last[1].F)
	require.Equal(t, []int{node}, d.repaired)
	require.False(t, f.down[node], "taken back, it runs again")

	d.stuck = true
	require.NoError(t, c.Start(context.Background(), x))
	node = (*ops)[len(*ops)-2].Node
	require.NoError(t, c.Stop(context.Background(), x), "damage that cannot be taken back is no failure of the run")
	require.Equal(t, fault.Repair, (*ops)[len(*ops)-1].F)
	require.Contains(t, (*ops)[len(*ops)-1].Describe(), "cannot be taken back: n")
	require.True(t, f.down[node], "it stays down")
	n := len(*ops)
	require.NoError(t, c.Stop(context.Background(), x))
	require.Len(t, *ops, n, "and is not tried again")

	d.stuck, d.refuse = false, nil
	up := 0
	for _, id := range x.Cluster.IDs() {
		if !f.down[id] {
			up = id
		}
	}
	x.damaged[up] = true
	f.down[up] = true // started on its damaged data, then exited
	require.NoError(t, c.Stop(context.Background(), x))
	require.Equal(t, fault.Restart, (*ops)[len(*ops)-1].F)
	require.False(t, f.down[up], "a node that exited after starting on damaged data is started again")
}

func TestTheMixDrawsOnlyBitFlipsWhereCorruptByNameAlsoCuts(t *testing.T) {
	kinds := func(c *Corruption) map[string]int {
		got := map[string]int{}
		for seed := int64(0); seed < 40; seed++ {
			f := newFake(5, 1)
			x, _ := execFor(f, nil)
			x.Rand = rand.New(rand.NewSource(seed))
			d := &damager{checks: true}
			x.Data = d
			require.NoError(t, c.Start(context.Background(), x))
			for _, a := range d.asked {
				got[a.Kind]++
			}
		}
		return got
	}
	named, err := Parse("corrupt", ShapeRandom)
	require.NoError(t, err)
	require.Positive(t, kinds(named[0].(*Corruption))[fault.Truncate], "by name: some files are cut")
	all, err := Parse("all", ShapeRandom)
	require.NoError(t, err)
	var mixed *Corruption
	for _, n := range all {
		if c, ok := n.(*Corruption); ok {
			mixed = c
		}
	}
	require.NotNil(t, mixed, "--nemesis all damages data")
	got := kinds(mixed)
	require.Zero(t, got[fault.Truncate], "the mix cuts no file")
	require.Equal(t, 40, got[fault.BitFlip])

	both, err := Parse("all,corrupt", ShapeRandom)
	require.NoError(t, err)
	require.Len(t, both, len(all), "a kind is run once")
	for _, n := range both {
		if c, ok := n.(*Corruption); ok {
			require.False(t, c.FlipsOnly, "asked for by name as well: as named")
		}
	}
}

func TestADamageThatFindsNoSyncedFileIsNotedAndItsNodeStartsAgain(t *testing.T) {
	f := newFake(3, 1)
	x, ops := execFor(f, nil)
	x.Data = &damager{checks: true, nothing: true}
	require.NoError(t, (&Corruption{}).Start(context.Background(), x))
	var fs []fault.F
	for _, op := range *ops {
		fs = append(fs, op.F)
	}
	require.Equal(t, []fault.F{fault.Kill, fault.Corrupt, fault.Restart}, fs)
	require.Contains(t, (*ops)[1].Describe(), "data not damaged: nothing to damage: n", "and says why")
	for id := 1; id <= 3; id++ {
		require.False(t, f.down[id], "n%d runs", id)
	}
}

func TestAPowerLossOfTheMixIsAKillWithoutTheLazyDisk(t *testing.T) {
	f := newFake(3, 1)
	x, ops := execFor(f, nil)
	nems, err := Parse("all", ShapeRandom)
	require.NoError(t, err)
	for _, n := range nems {
		if n.Name() != "power-loss" {
			continue
		}
		require.NoError(t, n.Start(context.Background(), x))
		op := (*ops)[len(*ops)-1]
		require.Equal(t, fault.Kill, op.F, "the page cache keeps what a killed node wrote")
		require.Equal(t, "power-loss", op.Source)
		require.NoError(t, n.Stop(context.Background(), x))
		require.Equal(t, fault.Restart, (*ops)[len(*ops)-1].F)
		return
	}
	t.Fatal("--nemesis all has no power-loss")
}
