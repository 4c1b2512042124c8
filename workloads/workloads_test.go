package workloads

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/checker"
	"github.com/paxtest/paxtest/checker/history"
	"github.com/paxtest/paxtest/target/api"
)

func TestOnlyARefusedConnectionOrAnUnreachableHostProveARequestNeverLeft(t *testing.T) {
	opErr := func(errno syscall.Errno) error {
		return fmt.Errorf("POST /v1/op: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)})
	}
	for _, tc := range []struct {
		name      string
		err       error
		maybeSent bool
	}{
		{"connection refused", opErr(syscall.ECONNREFUSED), false},
		{"host unreachable", opErr(syscall.EHOSTUNREACH), false},
		{"network unreachable", opErr(syscall.ENETUNREACH), false},
		{"connection reset after sending", opErr(syscall.ECONNRESET), true},
		{"deadline", fmt.Errorf("POST: %w", context.DeadlineExceeded), true},
		{"connection closed mid-answer", fmt.Errorf("POST: %w", io.ErrUnexpectedEOF), true},
		{"an error naming a refusal only in its text", errors.New("connection refused"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.maybeSent, MaybeSent(tc.err))
		})
	}
}

// memHistory records events in memory.
type memHistory struct {
	mu     sync.Mutex
	events []history.Event
}

func (h *memHistory) Append(e history.Event) (history.Event, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e.Index = len(h.events)
	h.events = append(h.events, e)
	return e, nil
}

// node answers every operation with the response answer returns.
func node(t *testing.T, answer func(api.Request) api.Response) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req api.Request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		require.NoError(t, json.NewEncoder(w).Encode(answer(req)))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// closedPort is an address where nothing listens.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestAnOperationIsOkFailOrInfoByWhatTheNodesSaid(t *testing.T) {
	ok := func(api.Request) api.Response { return api.Response{OK: true} }
	mismatch := func(api.Request) api.Response { return api.Response{Error: api.ErrCASMismatch} }
	unknown := func(api.Request) api.Response {
		return api.Response{Error: api.ErrUnknown, Detail: "not chosen in time"}
	}
	busy := func(api.Request) api.Response { return api.Response{Error: api.ErrBusy} }
	release := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	t.Cleanup(hanging.Close)
	t.Cleanup(func() { close(release) }) // runs first: cleanups run last-registered first
	hangAddr := strings.TrimPrefix(hanging.URL, "http://")

	for _, tc := range []struct {
		name  string
		nodes func(t *testing.T) []string
		op    Op
		typ   string
		why   string // the completion's error begins with this
		node  string
	}{
		{"the node applied it", func(t *testing.T) []string { return []string{node(t, ok)} },
			Op{F: api.OpPut, Key: "k", Value: "1"}, history.OK, "", "n1"},
		{"a cas whose expected value did not match is a definite failure", func(t *testing.T) []string { return []string{node(t, mismatch)} },
			Op{F: api.OpCAS, Key: "k", From: "1", To: "2"}, history.Fail, api.ErrCASMismatch, "n1"},
		{"a not-leader answer is followed to the leader it names", func(t *testing.T) []string {
			leader := node(t, ok)
			follower := node(t, func(api.Request) api.Response { return api.Response{Error: api.ErrNotLeader, Leader: leader} })
			return []string{follower, leader}
		}, Op{F: api.OpPut, Key: "k", Value: "1"}, history.OK, "", "n2"},
		{"no node listening: it never left, a definite failure", func(t *testing.T) []string { return []string{closedPort(t), closedPort(t)} },
			Op{F: api.OpPut, Key: "k", Value: "1"}, history.Fail, ErrUnavailable, ""},
		{"busy until the budget ran out: never proposed", func(t *testing.T) []string { return []string{node(t, busy)} },
			Op{F: api.OpPut, Key: "k", Value: "1"}, history.Fail, ErrUnavailable, ""},
		{"the node said unknown: indeterminate", func(t *testing.T) []string { return []string{node(t, unknown)} },
			Op{F: api.OpPut, Key: "k", Value: "1"}, history.Info, "no definite answer", ""},
		{"no answer in time: indeterminate", func(t *testing.T) []string { return []string{hangAddr} },
			Op{F: api.OpPut, Key: "k", Value: "1"}, history.Info, "no definite answer", ""},
		{"refused by one node, timed out at another: indeterminate", func(t *testing.T) []string { return []string{closedPort(t), hangAddr} },
			Op{F: api.OpPut, Key: "k", Value: "1"}, history.Info, "no definite answer", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &memHistory{}
			var now int64
			cfg := Config{Nodes: httpNodes(tc.nodes(t)...), Concurrency: 1, History: h, Counts: &Counts{},
				Now:       func() int64 { now++; return now },
				OpTimeout: 400 * time.Millisecond, AttemptTimeout: 100 * time.Millisecond}
			c := newClient(cfg, 0, 0)
			typ, _, err := c.do(context.Background(), tc.op, false)
			require.NoError(t, err)
			require.Equal(t, tc.typ, typ)
			require.Len(t, h.events, 2)
			inv, done := h.events[0], h.events[1]
			require.Equal(t, history.Invoke, inv.Type)
			require.Equal(t, tc.typ, done.Type)
			require.Equal(t, inv.Client, done.Client)
			require.Equal(t, inv.Seq, done.Seq)
			require.True(t, strings.HasPrefix(done.Error, tc.why), "error %q should begin %q", done.Error, tc.why)
			require.Equal(t, tc.node, done.Node)
			if typ == history.Info {
				require.NotEqual(t, 0, c.process, "after an indeterminate operation the worker goes on as a new process")
			}
		})
	}
}

func TestMixedPlacementBindsTheEvenWorkersAcrossEveryNode(t *testing.T) {
	cfg := Config{Nodes: httpNodes("a", "b", "c"), Mixed: true}
	homes := map[int]bool{}
	for w := 0; w < 6; w++ {
		home, bound := cfg.home(w)
		require.Equal(t, w%2 == 0, bound, "worker %d", w)
		if bound {
			homes[home] = true
		}
	}
	require.Len(t, homes, 3, "the bound workers cover every node")

	cfg = Config{Nodes: httpNodes("a", "b", "c"), Bound: true}
	for w := 0; w < 6; w++ {
		home, bound := cfg.home(w)
		require.True(t, bound)
		require.Equal(t, w%3, home)
	}
	_, bound := Config{Nodes: httpNodes("a")}.home(0)
	require.False(t, bound, "without Bound or Mixed every worker follows the leader")
}

func TestTheRecordedValueIsTheOperationsInputOrWhatTheReadSaw(t *testing.T) {
	for _, tc := range []struct {
		op   Op
		res  *api.Response
		want string
	}{
		{Op{F: api.OpPut, Value: "3"}, nil, `"3"`},
		{Op{F: api.OpAppend, Value: "3"}, nil, `"3"`},
		{Op{F: api.OpCAS, From: "1", To: "2"}, nil, `{"from":"1","to":"2"}`},
		{Op{F: api.OpGet}, nil, `null`},
		{Op{F: api.OpGet}, &api.Response{OK: true}, `null`},
		{Op{F: api.OpGet}, &api.Response{OK: true, Found: true, Value: "7"}, `"7"`},
		{Op{F: api.OpRead}, &api.Response{OK: true}, `[]`},
		{Op{F: api.OpRead}, &api.Response{OK: true, List: []string{"1", "2"}}, `["1","2"]`},
	} {
		require.JSONEq(t, tc.want, string(value(tc.op, tc.res)), "%+v", tc.op)
	}
}

func TestRunStopsWithItsContextAndEveryInvocationCompletes(t *testing.T) {
	addr := node(t, func(req api.Request) api.Response {
		return api.Response{OK: true, Found: req.Op == api.OpGet, Value: "1"}
	})
	wl, err := New("register", 4, 2, 10)
	require.NoError(t, err)
	h := &memHistory{}
	var clock sync.Mutex
	var now int64
	cfg := Config{Nodes: httpNodes(addr), Concurrency: 4, Seed: 1, History: h, Counts: &Counts{},
		Now: func() int64 { clock.Lock(); defer clock.Unlock(); now++; return now }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, wl) }()
	require.Eventually(t, func() bool { return cfg.Counts.OK.Load() >= 40 }, 10*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done)

	open := map[string]bool{}
	for _, e := range h.events {
		id := fmt.Sprintf("%s/%d", e.Client, e.Seq)
		if e.Type == history.Invoke {
			require.False(t, open[id], "invoked twice: %s", id)
			open[id] = true
			continue
		}
		require.True(t, open[id], "completed without an invocation: %s", id)
		delete(open, id)
	}
	require.Empty(t, open, "every invocation completes before Run returns")
	require.NotEmpty(t, wl.Keys())
}

func TestAnUnknownWorkloadIsRefusedNamingTheAcceptedOnes(t *testing.T) {
	_, err := New("bank", 1, 0, 0)
	require.ErrorContains(t, err, `unknown workload "bank" (accepted: register, append)`)
}

func TestFinalReadersNeverShareAProcessAfterAnIndeterminateRead(t *testing.T) {
	unknown := func(api.Request) api.Response {
		return api.Response{Error: api.ErrUnknown, Detail: "not chosen in time"}
	}
	nodes := []string{node(t, unknown), node(t, unknown), node(t, unknown)}
	wl, err := New("register", 10, 1, 1) // a key per operation
	require.NoError(t, err)
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 100; i++ { // keys for the final reads
		wl.Next(i%10, r)
	}
	require.GreaterOrEqual(t, len(wl.Keys()), 48, "enough keys for every reader to read several")
	h := &memHistory{}
	var clock sync.Mutex
	var now int64
	cfg := Config{Nodes: httpNodes(nodes...), Concurrency: 10, History: h, Counts: &Counts{},
		Now:       func() int64 { clock.Lock(); defer clock.Unlock(); now++; return now },
		OpTimeout: 60 * time.Millisecond, AttemptTimeout: 30 * time.Millisecond}
	require.NoError(t, FinalReads(context.Background(), cfg, wl))
	open := map[history.Process]bool{}
	infos := 0
	for _, e := range h.events {
		if e.Type == history.Invoke {
			require.False(t, open[e.Process], "process %d invokes while its last read is open", e.Process)
			open[e.Process] = true
			continue
		}
		infos++
		delete(open, e.Process)
	}
	require.Positive(t, infos)
}

func TestAFinalReadThroughAFollowerFailsAtOnceAndTheLeaderReadsEveryKey(t *testing.T) {
	var leaderAddr string
	refuse := func(api.Request) api.Response { return api.Response{Error: api.ErrNotLeader, Leader: leaderAddr} }
	var mu sync.Mutex
	asked := map[string]int{} // key -> reads the leader answered
	leader := func(req api.Request) api.Response {
		mu.Lock()
		defer mu.Unlock()
		asked[req.Key]++
		return api.Response{OK: true, Found: true, Value: "v"}
	}
	leaderAddr = node(t, leader)
	nodes := []string{node(t, refuse), leaderAddr, node(t, refuse)}
	keys := finalKeys(t)
	h := &memHistory{}
	cfg := Config{Nodes: httpNodes(nodes...), History: h, Counts: &Counts{}, Now: func() int64 { return 0 }}
	require.NoError(t, FinalReads(context.Background(), cfg, keys))

	byNode := map[string]map[string]int{} // node -> type -> count
	for _, e := range h.events {
		require.True(t, e.Final)
		if e.Type == history.Invoke {
			continue
		}
		if byNode[e.Node] == nil {
			byNode[e.Node] = map[string]int{}
		}
		byNode[e.Node][e.Type]++
	}
	n := len(keys.Keys())
	require.Equal(t, map[string]map[string]int{"n1": {history.Fail: n}, "n2": {history.OK: n}, "n3": {history.Fail: n}}, byNode,
		"a follower's refusal is its answer; its hint is not followed")
	for _, e := range h.events {
		if e.Type == history.Fail {
			require.True(t, checker.Refused(e.Error), "a refusal the checkers know as one: %q", e.Error)
		}
	}
	for _, k := range keys.Keys() {
		require.Equal(t, 1, asked[k], "key %s is read once through the leader", k)
	}
}

func TestAKeyNoNodeAnsweredIsReadAgainFollowingTheLeader(t *testing.T) {
	var leaderAddr string
	refuse := func(api.Request) api.Response { return api.Response{Error: api.ErrNotLeader, Leader: leaderAddr} }
	var mu sync.Mutex
	asked := map[string]int{}
	// a node that leads only once every key has been asked of it once:
	// as if it were elected while the first reads were under way
	late := func(req api.Request) api.Response {
		mu.Lock()
		defer mu.Unlock()
		asked[req.Key]++
		if asked[req.Key] == 1 {
			return api.Response{Error: api.ErrNotLeader}
		}
		return api.Response{OK: true, Found: true, Value: "v"}
	}
	leaderAddr = node(t, late)
	nodes := []string{node(t, refuse), node(t, refuse), leaderAddr}
	keys := finalKeys(t)
	h := &memHistory{}
	cfg := Config{Nodes: httpNodes(nodes...), History: h, Counts: &Counts{}, Now: func() int64 { return 0 }}
	require.NoError(t, FinalReads(context.Background(), cfg, keys))

	ok := map[string]int{}
	for _, e := range h.events {
		if e.Type == history.OK {
			ok[e.Key]++
		}
	}
	for _, k := range keys.Keys() {
		require.Equal(t, 1, ok[k], "key %s has one successful final read", k)
		require.Equal(t, 2, asked[k], "key %s: refused once, then read following the leader", k)
	}
}

// finalKeys is a register workload that has used a few dozen keys.
func finalKeys(t *testing.T) Workload {
	wl, err := New("register", 10, 1, 1) // a key per operation
	require.NoError(t, err)
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 40; i++ {
		wl.Next(i%10, r)
	}
	require.GreaterOrEqual(t, len(wl.Keys()), 20)
	return wl
}

func TestAnOperationUnansweredWhenTheLoadEndsIsGivenUpAsIndeterminate(t *testing.T) {
	held := make(chan struct{})
	var asked atomic.Int64
	addr := node(t, func(api.Request) api.Response {
		asked.Add(1)
		<-held // a node that never answers in time
		return api.Response{OK: true}
	})
	t.Cleanup(func() { close(held) }) // before the node's server closes: cleanups run last first
	wl, err := New("register", 1, 1, 10)
	require.NoError(t, err)
	h := &memHistory{}
	cfg := Config{Nodes: httpNodes(addr), Concurrency: 1, Seed: 1, History: h, Counts: &Counts{},
		Now: func() int64 { return 0 }, OpTimeout: time.Minute, AttemptTimeout: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, wl) }()
	require.Eventually(t, func() bool { return asked.Load() == 1 }, 10*time.Second, time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run waited for an operation the node never answered, past its end grace")
	}
	require.Len(t, h.events, 2)
	require.Equal(t, history.Info, h.events[1].Type, "given up, the operation may still take effect")
}

// httpNodes are nodes at addrs, reached as the built-in target's client
// port is.
func httpNodes(addrs ...string) []Node {
	var out []Node
	for _, a := range addrs {
		out = append(out, Node{Addr: a, Conn: &api.Client{Addr: a}})
	}
	return out
}

// countingConn fails every request in a way that may have reached the
// node, and counts the sends.
type countingConn struct{ sends *atomic.Int64 }

func (c countingConn) Do(context.Context, api.Request) (api.Response, error) {
	c.sends.Add(1)
	return api.Response{}, errors.New("connection reset mid-request")
}

type dedupingConn struct{ countingConn }

func (dedupingConn) Deduplicates() bool { return true }

func TestAWriteThatMayHaveBeenAppliedIsSentAgainOnlyToASystemThatDeduplicates(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dedupes bool
		op      Op
		resent  bool
	}{
		{"a write to a system without deduplication is sent once", false, Op{F: api.OpPut, Key: "k", Value: "1"}, false},
		{"a cas likewise", false, Op{F: api.OpCAS, Key: "k", From: "1", To: "2"}, false},
		{"a read is sent again: it changes nothing", false, Op{F: api.OpGet, Key: "k"}, true},
		{"a write to a deduplicating system is sent again", true, Op{F: api.OpPut, Key: "k", Value: "1"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sends atomic.Int64
			var conn Conn = countingConn{sends: &sends}
			if tc.dedupes {
				conn = dedupingConn{countingConn{sends: &sends}}
			}
			h := &memHistory{}
			cfg := Config{Nodes: []Node{{Addr: "a", Conn: conn}, {Addr: "b", Conn: conn}}, Concurrency: 1, History: h, Counts: &Counts{},
				Now: func() int64 { return 1 }, OpTimeout: 200 * time.Millisecond, AttemptTimeout: 50 * time.Millisecond}
			typ, _, err := newClient(cfg, 0, 0).do(context.Background(), tc.op, false)
			require.NoError(t, err)
			require.Equal(t, history.Info, typ, "its outcome is unknown")
			require.Equal(t, tc.resent, sends.Load() > 1, "sent %d times", sends.Load())
		})
	}
}

func TestARegisterKeyIsLeftOnceWritesOfUnknownOutcomePileUpOnIt(t *testing.T) {
	r, err := New("register", 3, 0, 0)
	require.NoError(t, err)
	wl, ok := r.(*Register)
	require.True(t, ok)
	rnd := rand.New(rand.NewSource(1))
	first := wl.Next(0, rnd).Key
	for i := 0; i < openWritesPerKey-1; i++ {
		wl.Observe(i%3, Op{F: api.OpPut, Key: first, Value: "v"}, history.Info, api.Response{})
		wl.Observe(1, Op{F: api.OpGet, Key: first}, history.Info, api.Response{}) // a read changes nothing: not counted
	}
	require.Equal(t, first, wl.Next(1, rnd).Key, "fewer open writes than the bound: the group stays")
	wl.Observe(2, Op{F: api.OpCAS, Key: first, From: "a", To: "b"}, history.Info, api.Response{})
	next := wl.Next(2, rnd).Key
	require.NotEqual(t, first, next, "the bound reached: the group moves to a fresh key")
	wl.Observe(0, Op{F: api.OpPut, Key: first, Value: "v"}, history.Info, api.Response{})
	require.Equal(t, next, wl.Next(0, rnd).Key, "a late answer about the key left behind does not count against the new one")
}
