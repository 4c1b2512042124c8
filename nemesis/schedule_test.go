package nemesis

import (
	"context"
	"math/rand"
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
