// Package workloads owns the clients and the operation generators: the
// register workload (get, put, cas over independent keys, a few clients per
// key at a time, a bounded number of operations per key) and the append
// workload (unique values appended to lists; reads return the whole list),
// plus the final reads after the cluster heals.
//
// Every logical operation is recorded once: an invoke, then ok, fail
// (certainly did not happen) or info (indeterminate). Clients speak to a
// node through a Conn (the system under test's client, harness/db) and
// follow its not-leader hints. It must not name a system, inject faults or
// judge histories.
package workloads

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/paxtest/paxtest/checker/history"
	"github.com/paxtest/paxtest/target/api"
)

// Names lists the accepted --workload values.
func Names() []string { return []string{"register", "append"} }

// Op is one generated operation.
type Op struct {
	F     string // api op
	Key   string
	Value string
	From  string
	To    string
}

// Workload generates operations for workers.
type Workload interface {
	Name() string
	// Next returns worker w's next operation.
	Next(w int, r *rand.Rand) Op
	// Observe tells the workload how an operation ended.
	Observe(w int, op Op, typ string, res api.Response)
	// Keys returns every key used so far, for the final reads.
	Keys() []string
	// FinalRead is the read op of the final reads ("get" or "read").
	FinalRead() string
}

// New builds a workload by name.
func New(name string, concurrency, clientsPerKey, opsPerKey int) (Workload, error) {
	if clientsPerKey <= 0 {
		clientsPerKey = 3
	}
	if opsPerKey <= 0 {
		opsPerKey = 100
	}
	k := newKeys(concurrency, clientsPerKey, opsPerKey)
	switch name {
	case "register":
		return &Register{keys: k, last: map[string]string{}}, nil
	case "append":
		return &Append{keys: k}, nil
	}
	return nil, fmt.Errorf("unknown workload %q (accepted: %s)", name, strings.Join(Names(), ", "))
}

// Recorder appends events to the history.
type Recorder interface {
	Append(history.Event) (history.Event, error)
}

// Counts are live operation counts, for progress and results, and when
// an operation was last acknowledged (the run clock's time), which paces
// the nemesis.
type Counts struct{ OK, Fail, Info, LastOK atomic.Int64 }

// acknowledged counts an acknowledged operation completed at t.
func (c *Counts) acknowledged(t int64) {
	c.OK.Add(1)
	for {
		last := c.LastOK.Load()
		if t <= last || c.LastOK.CompareAndSwap(last, t) {
			return
		}
	}
}

// Conn performs one operation on one node, answering as the target's
// client port does (a db.Client).
type Conn interface {
	Do(ctx context.Context, req api.Request) (api.Response, error)
}

// deduplicating is a Conn whose system applies a write at most once per
// (client, seq), however often it is sent (the target's rule 9): a write
// whose outcome became unknown may be sent again, to another node. A
// write through any other Conn is sent once more only when the error
// proves it never left; otherwise its outcome stays unknown (info), as a
// second copy could be applied after the first.
type deduplicating interface{ Deduplicates() bool }

// mayResend reports whether req may be sent again after it may have
// been applied: a read always, a write only to a deduplicating system.
func (c *client) mayResend(req api.Request) bool {
	if req.Op == api.OpGet || req.Op == api.OpRead {
		return true
	}
	d, ok := c.cfg.Nodes[c.node].Conn.(deduplicating)
	return ok && d.Deduplicates()
}

// Node is one node as the clients reach it.
type Node struct {
	Addr string // its client address, as a not-leader hint names it
	Conn Conn
}

// Config configures a workload run.
type Config struct {
	Nodes          []Node // node id = index + 1
	Concurrency    int
	Rate           float64 // total operations per second; 0 = as fast as possible
	Seed           int64
	Now            func() int64 // the run clock
	History        Recorder
	Counts         *Counts
	OpTimeout      time.Duration // a logical operation's budget, retries included
	AttemptTimeout time.Duration // one attempt's budget (a node's answer or its error)
	// Bound makes every operation start at the worker's own node (worker
	// mod nodes), as Jepsen binds clients to nodes; hints are followed for
	// that operation only. Otherwise a worker stays where it last
	// succeeded, which is usually the leader.
	Bound bool
	// Mixed binds every other worker (the even ones, spread over the
	// nodes) and lets the others follow the leader: the bound ones keep
	// sending to both sides of a split, so a leader cut off in a minority
	// still receives writes, and the followers keep the throughput up.
	Mixed bool
	// OutOfPlay, when set, names nodes (by index) that final reads skip:
	// spares never started and removed nodes retired.
	OutOfPlay func(i int) bool
}

// endGrace is how long an operation still unanswered when the load ends
// may take: then it is given up as indeterminate (info), as when its own
// timeout runs out, rather than hold up the end of the run for a node's
// full request timeout.
const endGrace = 200 * time.Millisecond

// Run drives cfg.Concurrency workers until ctx is done.
func Run(ctx context.Context, cfg Config, wl Workload) error {
	ops, giveUp := context.WithCancel(context.WithoutCancel(ctx))
	defer giveUp()
	defer context.AfterFunc(ctx, func() { time.AfterFunc(endGrace, giveUp) })()
	var wg sync.WaitGroup
	errs := make(chan error, cfg.Concurrency)
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := newClient(cfg, w, w)
			c.ops = ops
			c.stride = max(cfg.Concurrency, 1)
			r := rand.New(rand.NewSource(cfg.Seed*7919 + int64(w)))
			var interval time.Duration
			if cfg.Rate > 0 {
				interval = time.Duration(float64(time.Second) * float64(cfg.Concurrency) / cfg.Rate)
			}
			next := time.Now()
			for ctx.Err() == nil {
				if interval > 0 {
					next = next.Add(interval)
					if d := time.Until(next); d > 0 {
						select {
						case <-ctx.Done():
							return
						case <-time.After(d):
						}
					}
				}
				op := wl.Next(w, r)
				if home, bound := cfg.home(w); bound {
					c.node = home
				}
				typ, res, err := c.do(ctx, op, false)
				if err != nil {
					errs <- err
					return
				}
				wl.Observe(w, op, typ, res)
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// home is worker w's own node, if it is bound to one.
func (cfg Config) home(w int) (int, bool) {
	switch {
	case cfg.Bound:
		return w % len(cfg.Nodes), true
	case cfg.Mixed && w%2 == 0:
		return (w / 2) % len(cfg.Nodes), true
	}
	return 0, false
}

// finalReaders is how many readers read through each node at once.
const finalReaders = 24

// FinalReads reads every key through every node in play, after the
// cluster healed. A node that serves reads answers for itself (a stale
// follower shows here); one that refuses as not the leader fails the read
// at once instead of handing it on, since the reads through the leader
// read every key already. A key that no node answered (the leader changed
// meanwhile) is read once more, following the leader.
func FinalReads(ctx context.Context, cfg Config, wl Workload) error {
	keys := wl.Keys()
	answered := make([]atomic.Bool, len(keys))
	var through []readers
	for i := range cfg.Nodes {
		if cfg.OutOfPlay == nil || !cfg.OutOfPlay(i) {
			through = append(through, readers{group: i, node: i})
		}
	}
	all := make([]int, len(keys))
	for k := range all {
		all[k] = k
	}
	if err := finalPass(ctx, cfg, wl, through, true, keys, all, answered); err != nil {
		return err
	}
	var rest []int
	for k := range keys {
		if !answered[k].Load() {
			rest = append(rest, k)
		}
	}
	if len(rest) == 0 || len(through) == 0 {
		return nil
	}
	// readers that follow the leader, from a node in play, numbered as a
	// group beyond every node's
	return finalPass(ctx, cfg, wl, []readers{{group: len(cfg.Nodes), node: through[0].node}}, false, keys, rest, answered)
}

// readers is a group of finalReaders final readers: the group numbers
// their processes apart from every other group's; node is where their
// reads start.
type readers struct{ group, node int }

// finalPass reads keys[k] for every k in which through each group of
// readers; pinned readers take a not-leader answer as the read's failure.
func finalPass(ctx context.Context, cfg Config, wl Workload, groups []readers, pinned bool, keys []string, which []int, answered []atomic.Bool) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(groups)*finalReaders)
	for _, g := range groups {
		for r := 0; r < finalReaders; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// final readers use process numbers beyond every worker's,
				// each group's apart from every other's
				c := newClient(cfg, 1_000_000+g.group*finalReaders+r, g.node)
				c.stride = (len(cfg.Nodes) + 1) * finalReaders
				c.pinned = pinned
				for j := r; j < len(which); j += finalReaders {
					k := which[j]
					c.node = g.node
					typ, _, err := c.do(ctx, Op{F: wl.FinalRead(), Key: keys[k]}, true)
					if err != nil {
						errs <- err
						return
					}
					if typ == history.OK {
						answered[k].Store(true)
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	return <-errs
}

type client struct {
	cfg     Config
	process int
	stride  int // how far a process number moves after an indeterminate op: past every other client of its group
	seq     uint64
	node    int             // index into cfg.Nodes
	pinned  bool            // a node that is not the leader fails the op, its hint not followed
	ops     context.Context // cancelled, a request under way is given up
	rand    *rand.Rand
}

func newClient(cfg Config, process, w int) *client {
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 3 * time.Second
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 1500 * time.Millisecond
	}
	return &client{
		cfg: cfg, process: process, node: w % len(cfg.Nodes),
		rand: rand.New(rand.NewSource(cfg.Seed + int64(process))), ops: context.Background(),
	}
}

// value is the JSON of an operation's value, as the history writes it.
func value(op Op, res *api.Response) json.RawMessage {
	var v any
	switch op.F {
	case api.OpPut, api.OpAppend:
		v = op.Value
	case api.OpCAS:
		v = history.CAS{From: op.From, To: op.To}
	case api.OpGet:
		if res != nil && res.Found {
			v = res.Value
		}
	case api.OpRead:
		if res != nil {
			v = append([]string{}, res.List...)
		}
	}
	b, _ := json.Marshal(v)
	return b
}

// do performs one logical operation and records it.
func (c *client) do(ctx context.Context, op Op, final bool) (string, api.Response, error) {
	c.seq++
	id := fmt.Sprintf("p%d", c.process)
	ev := history.Event{Time: c.cfg.Now(), Process: history.Process(c.process), Type: history.Invoke, F: op.F,
		Key: op.Key, Value: value(op, nil), Client: id, Seq: c.seq, Final: final}
	if _, err := c.cfg.History.Append(ev); err != nil {
		return "", api.Response{}, err
	}
	req := api.Request{Client: id, Seq: c.seq, Op: op.F, Key: op.Key, Value: op.Value, From: op.From, To: op.To}
	typ, res, node, why := c.send(ctx, req)
	done := ev
	done.Time, done.Type, done.Node, done.Error = c.cfg.Now(), typ, node, why
	if typ == history.OK {
		done.Value = value(op, &res)
	}
	if _, err := c.cfg.History.Append(done); err != nil {
		return "", api.Response{}, err
	}
	switch typ {
	case history.OK:
		c.cfg.Counts.acknowledged(done.Time)
	case history.Fail:
		c.cfg.Counts.Fail.Add(1)
	case history.Info:
		c.cfg.Counts.Info.Add(1)
		// The operation may still take effect at any later time: this
		// process is done, as in Jepsen; the worker goes on as a new one.
		c.process += max(c.stride, 1)
		c.seq = 0
	}
	return typ, res, nil
}

// send tries nodes until the operation is decided or its budget is spent.
// It returns the history type, the response, the node that answered and why
// a fail or info happened.
func (c *client) send(ctx context.Context, req api.Request) (string, api.Response, string, string) {
	deadline := time.Now().Add(c.cfg.OpTimeout)
	maybeSent := false
	lastWhy := ""
	for attempt := 0; ; attempt++ {
		if time.Now().After(deadline) || (attempt > 0 && ctx.Err() != nil) {
			if maybeSent {
				return history.Info, api.Response{}, "", "no definite answer: " + lastWhy
			}
			return history.Fail, api.Response{}, "", ErrUnavailable + ": no node took the command: " + lastWhy
		}
		name := fmt.Sprintf("n%d", c.node+1)
		actx, cancel := context.WithTimeout(c.ops, c.cfg.AttemptTimeout)
		res, err := c.cfg.Nodes[c.node].Conn.Do(actx, req)
		cancel()
		switch {
		case err != nil:
			lastWhy = name + ": " + err.Error()
			if MaybeSent(err) {
				maybeSent = true
				if !c.mayResend(req) {
					return history.Info, api.Response{}, "", "no definite answer: " + lastWhy
				}
			}
			c.node = c.rand.Intn(len(c.cfg.Nodes))
			c.pause(ctx, 20*time.Millisecond)
		case res.OK:
			return history.OK, res, name, ""
		case res.Error == api.ErrCASMismatch:
			return history.Fail, res, name, res.Error
		case res.Error == api.ErrBadRequest:
			return history.Fail, res, name, res.Error + ": " + res.Detail
		case res.Error == api.ErrNotLeader && c.pinned:
			return history.Fail, res, name, api.ErrNotLeader + ": " + name + " is not the leader and serves no reads"
		case res.Error == api.ErrNotLeader:
			lastWhy = name + " is not the leader"
			if i := c.index(res.Leader); i >= 0 && i != c.node {
				c.node = i
				continue
			}
			c.pause(ctx, 20*time.Millisecond)
			c.node = c.rand.Intn(len(c.cfg.Nodes))
		case res.Error == api.ErrBusy:
			lastWhy = name + " is busy"
			c.pause(ctx, 10*time.Millisecond)
		default: // the node said unknown (proposed, not chosen in time), or an answer it should not give
			maybeSent = true
			lastWhy = name + ": " + res.Error + " " + res.Detail
			if !c.mayResend(req) {
				return history.Info, api.Response{}, "", "no definite answer: " + lastWhy
			}
			c.node = c.rand.Intn(len(c.cfg.Nodes))
			c.pause(ctx, 20*time.Millisecond)
		}
	}
}

// ErrUnavailable begins the error of an operation no node took: refused
// (not leader, busy) until its budget ran out, never proposed.
const ErrUnavailable = "unavailable"

// MaybeSent decides, from a transport error, whether the request may have
// reached the node: only a refused connection or an unreachable host
// prove it never left. A timeout, a reset or a closed connection may come
// after the node took the command, whose outcome is then unknown.
func MaybeSent(err error) bool {
	for _, never := range []error{syscall.ECONNREFUSED, syscall.EHOSTUNREACH, syscall.ENETUNREACH} {
		if errors.Is(err, never) {
			return false
		}
	}
	return true
}

func (c *client) pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (c *client) index(addr string) int {
	for i, n := range c.cfg.Nodes {
		if n.Addr == addr {
			return i
		}
	}
	return -1
}
