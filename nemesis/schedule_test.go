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

// scenarioLog is a scenario that records its attempts; its first attempt
// is abandoned when abandonFirst is set.
type scenarioLog struct {
	name         string
	abandonFirst bool
	attempts     int
	log          *[]string
	mu           *sync.Mutex
}

func (s *scenarioLog) Name() string    { return s.name }
func (s *scenarioLog) Exclusive() bool { return true }
func (s *scenarioLog) Retry() bool     { return s.abandonFirst && s.attempts == 1 }
func (s *scenarioLog) Start(context.Context, *Exec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	*s.log = append(*s.log, s.name)
	return nil
}
func (s *scenarioLog) Stop(context.Context, *Exec) error { return nil }

func TestAnAbandonedScenarioHasTheNextScenarioDrawAgain(t *testing.T) {
	f := newFake(3, 1)
	x, err := NewExec(ExecConfig{Cluster: f, Net: f, Delays: f, Rand: rand.New(rand.NewSource(1)), Now: func() int64 { return 0 }})
	require.NoError(t, err)
	var mu sync.Mutex
	var log []string
	a := &scenarioLog{name: "a", abandonFirst: true, log: &log, mu: &mu}
	b := &scenarioLog{name: "b", log: &log, mu: &mu}
	s := &Schedule{Nemeses: []Nemesis{a, b}, Interval: 20 * time.Millisecond, X: x}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(log) >= 4 }, 10*time.Second, time.Millisecond)
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	first := -1
	for i, n := range log {
		if n == "a" {
			first = i
			break
		}
	}
	require.GreaterOrEqual(t, first, 0)
	require.Less(t, first+1, len(log))
	require.Equal(t, "a", log[first+1], "the abandoned attempt of a is followed by a again: %v", log)
}
