package nemesis

import (
	"context"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/nemesis/fault"
)

func TestTheMixOverlapsFaultsOfDifferentKindsAndLiftsThemAllAtTheEnd(t *testing.T) {
	f := newFake(5, 1)
	var mu sync.Mutex
	var ops []fault.Op
	start := time.Now()
	x, err := NewExec(ExecConfig{Cluster: f, Net: f, Delays: f, Rand: rand.New(rand.NewSource(3)), Now: func() int64 { return int64(time.Since(start)) }})
	require.NoError(t, err)
	x.Emit = func(op fault.Op, _ error) {
		mu.Lock()
		ops = append(ops, op)
		mu.Unlock()
	}
	nems, err := Parse("partition,kill,pause", ShapeRandom)
	require.NoError(t, err)
	s := &Schedule{Nemeses: nems, Interval: 60 * time.Millisecond, X: x}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	s.Run(ctx)

	mu.Lock()
	defer mu.Unlock()
	ivs := fault.Intervals(ops, int64(time.Since(start)))
	overlaps := 0
	for i, a := range ivs {
		for _, b := range ivs[i+1:] {
			if a.Kind != b.Kind && b.Start < a.End && a.Start < b.End {
				overlaps++
			}
		}
	}
	require.Positive(t, overlaps, "faults of different kinds were in force together")
	kinds := map[fault.F]bool{}
	for _, o := range ops {
		kinds[o.F] = true
	}
	for _, k := range []fault.F{fault.Partition, fault.Heal, fault.Kill, fault.Restart, fault.Pause, fault.Resume} {
		require.True(t, kinds[k], "the mix performed %s", k)
	}
	require.Empty(t, f.blocked, "every link is open at the end")
	for _, id := range f.ids {
		require.False(t, f.down[id], "n%d runs at the end", id)
	}
	require.Empty(t, x.Paused(), "no node is left paused")
	require.Empty(t, s.Errors())
}

func TestKillAMajorityTakesDownAQuorumOfTheNodesInPlay(t *testing.T) {
	f := newFake(5, 1)
	x, _ := execFor(f, nil)
	op, err := x.Do(context.Background(), fault.Op{F: fault.Kill, Sel: &fault.Sel{Set: []string{"majority"}}}, nil)
	require.NoError(t, err)
	require.Len(t, op.Nodes, 3)
	op, err = x.Do(context.Background(), fault.Op{F: fault.Pause, Sel: &fault.Sel{Set: []string{"minority"}}}, nil)
	require.NoError(t, err)
	require.NotEmpty(t, op.Nodes)
	for _, id := range op.Nodes {
		require.False(t, f.down[id], "a node is drawn among the running ones")
	}
}

func TestThePacedMixStartsNoFaultBeforeTheClusterServedAgainAfterAHeal(t *testing.T) {
	for _, tc := range []struct {
		name      string
		serving   bool
		pace      time.Duration
		wantKills func(int) bool
		wantNote  bool
	}{
		{"serving after every heal: fault after fault", true, 10 * time.Second, func(n int) bool { return n >= 3 }, false},
		{"never serving again: one fault, then it waits", false, 10 * time.Second, func(n int) bool { return n == 1 }, false},
		{"never serving again: past the pace it goes on and says so", false, 150 * time.Millisecond, func(n int) bool { return n >= 2 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(3, 1)
			var mu sync.Mutex
			var ops []fault.Op
			start := time.Now()
			now := func() int64 { return int64(time.Since(start)) + 1 }
			x, err := NewExec(ExecConfig{Cluster: f, Net: f, Delays: f, Rand: rand.New(rand.NewSource(3)), Now: now})
			require.NoError(t, err)
			x.Emit = func(op fault.Op, _ error) {
				mu.Lock()
				ops = append(ops, op)
				mu.Unlock()
			}
			served := func() int64 {
				if tc.serving {
					return now()
				}
				return 0
			}
			nems, err := Parse("kill", ShapeRandom)
			require.NoError(t, err)
			s := &Schedule{Nemeses: nems, Interval: 50 * time.Millisecond, X: x, Served: served, Pace: tc.pace}
			ctx, cancel := context.WithTimeout(context.Background(), 900*time.Millisecond)
			defer cancel()
			s.Run(ctx)
			mu.Lock()
			defer mu.Unlock()
			kills, noted := 0, false
			for _, o := range ops {
				if o.F == fault.Kill {
					kills++
				}
				noted = noted || o.F == fault.Note && o.Source == "mix"
			}
			require.True(t, tc.wantKills(kills), "%d kills", kills)
			require.Equal(t, tc.wantNote, noted, "a note says the mix went on without an acknowledgement")
		})
	}
}

func TestAScriptNeedsTheNodesItsRolesBindOrWhatItsOptionSays(t *testing.T) {
	for name, want := range map[string]int{"figure8": 5, "figure8-regain": 5, "bridge-restart": 5, "zombie-leader": 3,
		"fresh-leader-kill": 3, "membership-split": 3} {
		sc, err := Builtin(name)
		require.NoError(t, err)
		require.Equal(t, want, sc.MinNodes, name)
	}
	sc, err := ParseScript("t", strings.NewReader("leader L\npartition L | rest\n"))
	require.NoError(t, err)
	require.Equal(t, 2, sc.MinNodes, "a rest beside one role is a second node")
}

func TestFitLeavesOutOfAllWhatTheClusterIsTooSmallForAndRefusesItByName(t *testing.T) {
	all, err := Parse("all", ShapeRandom)
	require.NoError(t, err)
	kept, left, err := Fit("all", all, 1)
	require.NoError(t, err)
	for _, n := range kept {
		require.LessOrEqual(t, MinNodes(n), 1, n.Name())
	}
	require.Contains(t, left, "partition")
	require.Contains(t, left["figure8"], "needs at least 5 nodes; the cluster has 1")
	require.NotContains(t, left, "kill")
	kept5, left5, err := Fit("all", all, 5)
	require.NoError(t, err)
	require.Len(t, kept5, len(all))
	require.Empty(t, left5)

	named, err := Parse("kill,figure8", ShapeRandom)
	require.NoError(t, err)
	_, _, err = Fit("kill,figure8", named, 2)
	require.ErrorContains(t, err, "figure8 needs at least 5 nodes, and --nodes 2 has fewer")
}
