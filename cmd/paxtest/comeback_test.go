package main

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/checker/history"
	"github.com/paxtest/paxtest/harness/cluster"
	"github.com/paxtest/paxtest/harness/db"
	"github.com/paxtest/paxtest/nemesis/network"
	"github.com/paxtest/paxtest/target/api"
	"github.com/paxtest/paxtest/workloads"
)

// acks records when the workload's operations were acknowledged.
type acks struct {
	mu    sync.Mutex
	ok    []time.Time
	fails []time.Time
}

func (a *acks) Append(e history.Event) (history.Event, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch e.Type {
	case history.OK:
		a.ok = append(a.ok, time.Now())
	case history.Fail, history.Info:
		a.fails = append(a.fails, time.Now())
	}
	return e, nil
}

// firstAfter is the first acknowledgement after t (zero: none yet), and
// the first failure after t.
func (a *acks) firstAfter(t time.Time) (ok, failed time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, x := range a.ok {
		if x.After(t) {
			ok = x
			break
		}
	}
	for _, x := range a.fails {
		if x.After(t) {
			failed = x
			break
		}
	}
	return ok, failed
}

// pollFor polls cond every 10 ms until it holds or within passes.
func pollFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "%s: not within %v", what, within)
		<-time.After(10 * time.Millisecond)
	}
}

// The workload's clients reach a restarted node within a second of its
// serving again, for every db: the node is killed, left down while the
// clients are refused for six seconds (long enough for gRPC's default
// reconnect backoff to grow past two seconds), restarted, and the moment it serves
// is found by a fresh client of a db opened anew; the workers' first
// acknowledgement after the restart must follow within a second.
func TestClientsReachARestartedNodeWithinASecondOfItsServingAgain(t *testing.T) {
	example, err := filepath.Abs(filepath.Join("..", "..", "examples", "paxtest.json"))
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		open func(t *testing.T) (db.DB, error)
	}{
		{"paxtest", func(*testing.T) (db.DB, error) { return db.Open("paxtest", db.Options{Binary: selfBinary(t)}) }},
		{"exec", func(*testing.T) (db.DB, error) {
			return db.Open("exec", db.Options{Binary: selfBinary(t), Config: example})
		}},
		{"etcd", func(t *testing.T) (db.DB, error) {
			return db.Open("etcd", db.Options{Binary: etcdOrSkip(t)})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sut, err := tc.open(t)
			require.NoError(t, err)
			c, err := cluster.New(cluster.Config{Nodes: 1, DB: sut, Dir: t.TempDir(), Net: network.NewProxy(), Env: []string{"PAXTEST_BE_MAIN=1"}})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, c.Close()) })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			require.NoError(t, c.Start(ctx))
			n := c.Node(1)
			rec := &acks{}
			start := time.Now()
			cfg := workloads.Config{Nodes: []workloads.Node{{Addr: n.ClientAddr, Conn: sut.Client(n.Node)}}, Concurrency: 4, Seed: 1,
				Now: func() int64 { return int64(time.Since(start)) }, History: rec, Counts: &workloads.Counts{}}
			wl, err := workloads.New("register", 4, 0, 0)
			require.NoError(t, err)
			done := make(chan error, 1)
			go func() { done <- workloads.Run(ctx, cfg, wl) }()
			pollFor(t, 20*time.Second, "a first acknowledgement", func() bool { ok, _ := rec.firstAfter(start); return !ok.IsZero() })

			killed := time.Now()
			require.NoError(t, c.Kill(1))
			pollFor(t, 20*time.Second, "the node refused for 6 s", func() bool {
				_, failed := rec.firstAfter(killed)
				return !failed.IsZero() && time.Since(failed) > 6*time.Second
			})
			restarted := time.Now()
			require.NoError(t, c.Restart(ctx, 1))
			serves := servesAt(t, tc.open, n.Node)
			var first time.Time
			pollFor(t, 20*time.Second, "an acknowledgement after the restart", func() bool { first, _ = rec.firstAfter(restarted); return !first.IsZero() })
			cancel()
			require.NoError(t, <-done)
			t.Logf("%s: serves %.2f s after the restart; first acknowledgement %.2f s after it serves", tc.name,
				serves.Sub(restarted).Seconds(), first.Sub(serves).Seconds())
			require.Less(t, first.Sub(serves), time.Second, "the workers came back within a second of the node's serving")
		})
	}
}

// servesAt is when node n first acknowledges a write through a client of
// a db opened anew (no backoff carried over from before the restart).
func servesAt(t *testing.T, open func(*testing.T) (db.DB, error), n db.Node) time.Time {
	t.Helper()
	fresh, err := open(t)
	require.NoError(t, err)
	defer func() { require.NoError(t, fresh.Close()) }()
	cl := fresh.Client(n)
	var at time.Time
	pollFor(t, 20*time.Second, "the restarted node serves a fresh client", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		res, err := cl.Do(ctx, api.Request{Client: "probe", Seq: uint64(time.Now().UnixNano()), Op: api.OpPut, Key: "probe", Value: "1"})
		at = time.Now()
		return err == nil && res.OK
	})
	return at
}

// selfBinary is this test binary, which runs as paxtest with
// PAXTEST_BE_MAIN=1 (TestMain): the built-in node.
func selfBinary(t *testing.T) string {
	bin, err := filepath.Abs(os.Args[0])
	require.NoError(t, err)
	return bin
}
