package nemesis

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/paxtest/paxtest/nemesis/fault"
	"github.com/paxtest/paxtest/nemesis/network"
	"github.com/paxtest/paxtest/target/api"
)

// Control is what a nemesis does to the cluster's processes and asks of
// it; harness.Cluster implements it.
type Control interface {
	IDs() []int
	Leader(ctx context.Context) int
	Status(ctx context.Context, id int) (api.Status, error)
	IsDown(id int) bool
	Kill(id int) error
	Restart(ctx context.Context, id int) error
	Pause(id int) error
	Resume(id int) error
}

// MemberControl is what membership ops need of the cluster beyond
// Control; harness.Cluster implements it.
type MemberControl interface {
	Spares() []int // nodes out of play, which Join can start
	Join(ctx context.Context, id int) error
	Retire(id int) error
	ChangeMembers(ctx context.Context, req api.MembersRequest) (api.MembersResponse, error)
	// AddedBeforeStart: a spare starts only once it was added (etcd),
	// not before (the built-in target).
	AddedBeforeStart() bool
}

// ErrAbandon marks an attempt whose roles did not line up (no leader in
// time, nothing to wait for): it is healed and the next one starts.
var ErrAbandon = errors.New("attempt abandoned")

func abandon(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrAbandon, fmt.Sprintf(format, args...))
}

// Exec performs fault ops: it is the only code that acts on the cluster
// and its network for a nemesis. Every op it performs is written to the
// schedule (when recording) and handed to Emit (the history), with the
// time it was performed and the leader just before it. It keeps what is in
// force (the cut, delays, paused nodes) so that HealAll can lift it all.
// Ops are performed one at a time.
type Exec struct {
	Cluster Control
	// Members changes the configuration; nil for a cluster without spare
	// nodes (membership ops then fail, saying so).
	Members MemberControl
	// Disk drops unsynced writes in a power loss; nil without the lazy
	// disk (power-loss ops then fail, saying so).
	Disk PowerLosser
	// Data damages a down node's files (corrupt ops).
	Data    Corrupter
	damaged map[int]bool // nodes whose data was damaged: they may rightly refuse to start
	stopped map[int]bool // nodes that did refuse: heals leave them down
	Net     network.FaultLayer
	// Delays slows links down; nil for a layer that only cuts them.
	Delays network.Delayer
	Rand   *rand.Rand
	Now    func() int64
	// Emit receives every fault and note performed, with its error.
	Emit func(fault.Op, error)

	mu      sync.Mutex
	w       *bufio.Writer
	f       *os.File
	werr    error
	count   int              // ops recorded
	lifted  int64            // when the last op that lifted a fault was performed (run clock; 0: none yet)
	struck  map[int]fault.Op // each node's last fault
	leader  int              // the leader last seen by the poller
	stop    chan struct{}
	done    chan struct{}
	cut     [][2]int
	delayed bool
	paused  map[int]bool
}

// ExecConfig is what an executor acts on and records to.
type ExecConfig struct {
	Cluster  Control
	Members  MemberControl // nil: no membership changes
	Disk     PowerLosser   // nil: no lazy disk
	Data     Corrupter     // nil: data cannot be damaged
	Net      network.FaultLayer
	Delays   network.Delayer // nil: links cannot be slowed
	Rand     *rand.Rand
	Now      func() int64
	Schedule string // the file to record to ("": not recording)
}

// NewExec returns an executor. With a schedule path it records every op
// there (the file is created, never overwritten) and polls the leader in
// the background, so that recording an op never waits on a paused node.
func NewExec(cfg ExecConfig) (*Exec, error) {
	x := &Exec{Cluster: cfg.Cluster, Members: cfg.Members, Disk: cfg.Disk, Data: cfg.Data, damaged: map[int]bool{}, stopped: map[int]bool{}, struck: map[int]fault.Op{}, Net: cfg.Net, Delays: cfg.Delays, Rand: cfg.Rand, Now: cfg.Now, paused: map[int]bool{}}
	schedule := cfg.Schedule
	if schedule == "" {
		return x, nil
	}
	f, err := os.OpenFile(schedule, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create schedule %s: %w", schedule, err)
	}
	x.f, x.w = f, bufio.NewWriter(f)
	x.stop, x.done = make(chan struct{}), make(chan struct{})
	go x.poll()
	return x, nil
}

func (x *Exec) poll() {
	defer close(x.done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		id := x.Cluster.Leader(ctx)
		cancel()
		x.mu.Lock()
		x.leader = id
		x.mu.Unlock()
		select {
		case <-x.stop:
			return
		case <-t.C:
		}
	}
}

// LastFault is the last fault performed on node id (false: none).
func (x *Exec) LastFault(id int) (fault.Op, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	op, ok := x.struck[id]
	return op, ok
}

// Stopped reports whether node id refused to start on its damaged data:
// heals leave it down. Like the ops, it is called one at a time.
func (x *Exec) Stopped(id int) bool { return x.stopped[id] }

// LastLift is when the last op that lifted a fault was performed (run
// clock; 0: none yet).
func (x *Exec) LastLift() int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.lifted
}

func (x *Exec) knownLeader() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.leader
}

// Close stops the poller, flushes and closes the schedule.
func (x *Exec) Close() error {
	if x.f == nil {
		return nil
	}
	close(x.stop)
	<-x.done
	x.mu.Lock()
	defer x.mu.Unlock()
	err := x.w.Flush()
	if cerr := x.f.Close(); err == nil {
		err = cerr
	}
	return errors.Join(x.werr, err)
}

// record writes op to the schedule and returns its index there (-1: not recording).
func (x *Exec) record(op fault.Op) int {
	if x.f == nil {
		return -1
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	index := x.count
	x.count++
	b, err := json.Marshal(op)
	if err == nil {
		_, err = x.w.Write(append(b, '\n'))
	}
	if err == nil {
		err = x.w.Flush()
	}
	if err != nil && x.werr == nil {
		x.werr = fmt.Errorf("write schedule: %w", err)
	}
	return index
}

// done records a performed op and hands faults and notes to Emit.
func (x *Exec) finish(op fault.Op, err error) (fault.Op, int) {
	x.mu.Lock()
	if op.Lifts() && err == nil {
		x.lifted = max(x.lifted, op.Time)
	}
	if op.Starts() && err == nil {
		for _, id := range op.Touched() {
			x.struck[id] = op
		}
	}
	x.mu.Unlock()
	index := x.record(op)
	if x.Emit != nil && (!op.F.IsWait() || op.F == fault.Note) {
		x.Emit(op, err)
	}
	return op, index
}

// Note records a note (a stage of a scenario, why an attempt was abandoned).
func (x *Exec) Note(source string, attempt int, text string) {
	x.finish(fault.Op{Time: x.Now(), F: fault.Note, Note: text, Source: source, Attempt: attempt}, nil)
}

// CanDelay reports whether the fault layer can slow links down.
func (x *Exec) CanDelay() bool { return x.Delays != nil }

// CanCorrupt reports whether a node's data can be damaged at a place drawn
// at random: the system names files it checks for damage.
func (x *Exec) CanCorrupt() bool { return x.Data != nil && x.Data.Checked() }

// CanReset reports whether the fault layer can reset connections.
func (x *Exec) CanReset() bool {
	_, ok := x.Net.(network.Resetter)
	return ok
}

// Perform executes an op whose value is concrete (nodes and links named),
// records it and returns it with its time and, for a wait, what it found.
// A wait that times out is ErrAbandon.
func (x *Exec) Perform(ctx context.Context, op fault.Op) (fault.Op, error) {
	op, _, err := x.do(ctx, op)
	return op, err
}

// do performs op and returns it with its index in the schedule (for a
// later await-commit's Ref).
func (x *Exec) do(ctx context.Context, op fault.Op) (fault.Op, int, error) {
	op.Time = x.Now()
	if !op.F.IsWait() && op.F != fault.Restart && op.F != fault.Resume {
		op.Leader = x.knownLeader()
	}
	if op.F == fault.Members {
		// recorded when answered, with how long it took: a replay sends it
		// that long before, and times the next ops from its answer
		start := op.Time
		err := x.members(ctx, &op)
		op.Time = x.Now()
		op.Ms = (op.Time - start) / 1e6
		op, index := x.finish(op, err)
		return op, index, err
	}
	err := x.perform(ctx, &op)
	switch {
	case errors.Is(err, ErrAbandon):
		op, index := x.finish(op, nil) // the wait happened; a replay waits the same
		return op, index, err
	case err != nil && ctx.Err() != nil:
		// the run ended while the op was under way: not the op's failure
		op.Note = "cut short by the end of the run: " + err.Error()
		op, index := x.finish(op, nil)
		return op, index, err
	}
	op, index := x.finish(op, err)
	return op, index, err
}

func (x *Exec) perform(ctx context.Context, op *fault.Op) error {
	switch op.F {
	case fault.Partition:
		if err := x.Net.Block(op.Links); err != nil {
			return fmt.Errorf("partition: %w", err)
		}
		x.cut = op.Links
	case fault.Heal:
		x.cut = nil
		if err := x.Net.Block(nil); err != nil {
			return fmt.Errorf("heal: %w", err)
		}
		return x.clearDelays()
	case fault.Delay:
		if x.Delays == nil {
			if len(op.Links) == 0 {
				return nil
			}
			return fmt.Errorf("delaying links needs --net proxy (or, with --hosts, a kernel with netem on the hosts); this fault layer can only cut them")
		}
		x.delayed = len(op.Links) > 0
		return x.Delays.Delay(op.Links, network.Shape{Delay: time.Duration(op.Ms) * time.Millisecond,
			Jitter: time.Duration(op.JitterMs) * time.Millisecond, Rate: op.Rate})
	case fault.Reset:
		r, ok := x.Net.(network.Resetter)
		if !ok {
			return fmt.Errorf("resetting connections needs --net proxy; this fault layer can only cut links")
		}
		return r.Reset(op.Links)
	case fault.Kill, fault.Restart, fault.Pause, fault.Resume:
		return x.performOnNodes(ctx, op)
	case fault.PowerLoss:
		return x.powerLoss(op)
	case fault.Corrupt:
		return x.corrupt(op)
	case fault.Repair:
		return x.repair(op)
	case fault.Join, fault.Retire:
		if x.Members == nil {
			return fmt.Errorf("%s: this cluster has no spare nodes", op.F)
		}
		if op.F == fault.Join {
			return x.Members.Join(ctx, op.Node)
		}
		return x.Members.Retire(op.Node)
	case fault.Note:
	default:
		if op.F.AwaitsCluster() || op.F == fault.Observe {
			return x.await(ctx, op)
		}
		return fmt.Errorf("op %q cannot be performed as it stands (resolve it first)", op.F)
	}
	return nil
}

// performOnNodes kills, restarts, pauses or resumes op's nodes.
func (x *Exec) performOnNodes(ctx context.Context, op *fault.Op) error {
	c := x.Cluster
	var stopped []string
	for _, id := range op.Nodes {
		var err error
		switch op.F {
		case fault.Kill:
			if err = c.Kill(id); err == nil {
				delete(x.paused, id)
			}
		case fault.Restart:
			if c.IsDown(id) {
				err = c.Restart(ctx, id)
				switch {
				case err == nil || !didNotStart(err) || !c.IsDown(id) || ctx.Err() != nil:
				case x.damaged[id]:
					// its data was damaged: stopping rather than serving
					// it is the node's right answer, and the run says so
					stopped = append(stopped, fmt.Sprintf("n%d stopped rather than serve its damaged data: %s", id, lastLine(err.Error())))
					op.Stopped = append(op.Stopped, id)
					x.stopped[id] = true
					err = nil
				default:
					// nothing was damaged: the node's failure, a finding
					// of the run (did-not-recover if it stays down), not
					// the nemesis's
					stopped = append(stopped, fmt.Sprintf("n%d did not start again: %s", id, lastLine(err.Error())))
					op.NotStarted = append(op.NotStarted, id)
					err = nil
				}
			}
		case fault.Pause:
			if err = c.Pause(id); err == nil {
				x.paused[id] = true
			}
		case fault.Resume:
			if err = c.Resume(id); err == nil {
				delete(x.paused, id)
			}
		}
		if err != nil {
			return err
		}
	}
	if len(stopped) > 0 {
		op.Note = strings.Join(stopped, "; ")
	}
	return nil
}

// didNotStart reports whether err says a node did not start (its
// process exited while starting, or it never answered), as the cluster's
// start errors do, rather than the harness failing to start it.
func didNotStart(err error) bool {
	var d interface{ DidNotStart() bool }
	return errors.As(err, &d) && d.DidNotStart()
}

// await waits for what a scenario step needs: a leader, an accepted but
// unchosen slot, a slot chosen; or observes the commit point.
func (x *Exec) await(ctx context.Context, op *fault.Op) error {
	c := x.Cluster
	switch op.F {
	case fault.AwaitLeader:
		op.Node = waitLeaderAmong(ctx, c, op.Nodes, x.within(op, 5*time.Second), 2*time.Millisecond)
		if op.Node == 0 {
			return abandon("no leader among %s", fault.Names(op.Nodes))
		}
	case fault.AwaitAccepted:
		switch {
		case op.Slot > 0:
			return x.awaitAcceptedIn(ctx, op)
		case op.Sel != nil && op.Sel.New:
			return x.awaitNewAccepted(ctx, op)
		}
		var st api.Status
		if !pollUntil(ctx, x.within(op, 3*time.Second), 5*time.Millisecond, func() bool {
			var err error
			st, err = c.Status(ctx, op.Node)
			return err == nil && st.MaxSlot > st.CommitPoint
		}) {
			return abandon("n%d holds no unchosen slot", op.Node)
		}
		op.Slot = st.CommitPoint
	case fault.AwaitCaughtUp:
		return x.awaitCaughtUp(ctx, op)
	case fault.AwaitCommit:
		target := op.Slot
		if !pollUntil(ctx, x.within(op, 3*time.Second), time.Millisecond, func() bool {
			st, err := c.Status(ctx, op.Node)
			return err == nil && st.CommitPoint >= target
		}) {
			return abandon("n%d did not choose slot %d in time", op.Node, target)
		}
	case fault.Observe:
		st, err := c.Status(ctx, op.Node)
		if err != nil {
			return abandon("n%d's status is unreadable: %v", op.Node, err)
		}
		op.Slot = st.CommitPoint
	}
	return nil
}

func (x *Exec) within(op *fault.Op, def time.Duration) time.Duration {
	if op.Sel != nil && op.Sel.WithinMs > 0 {
		return time.Duration(op.Sel.WithinMs) * time.Millisecond
	}
	return def
}

func (x *Exec) clearDelays() error {
	if x.Delays == nil || !x.delayed {
		return nil
	}
	x.delayed = false
	return x.Delays.Delay(nil, network.Shape{})
}

// members sends a membership change through the leader.
func (x *Exec) members(ctx context.Context, op *fault.Op) error {
	if x.Members == nil {
		return fmt.Errorf("members: this cluster has no spare nodes")
	}
	ch := op.Change
	res, err := x.Members.ChangeMembers(ctx, api.MembersRequest{Op: ch.Op, Node: uint64(ch.Node), With: uint64(ch.With)})
	if err != nil {
		return fmt.Errorf("members: %w", err)
	}
	ch.OK, ch.Error = res.OK, res.Error
	if res.Detail != "" {
		ch.Error += " " + res.Detail
	}
	ch.Members, ch.Slot, ch.Effect = toInts(res.Members), res.Slot, res.EffectAt
	return nil
}

// HealAll lifts every fault in force: every link open, every delay
// cleared, paused nodes resumed, killed nodes restarted. Each is an op of
// its own, recorded like any other.
func (x *Exec) HealAll(ctx context.Context, source string, attempt int) error {
	var errs []error
	heal := func(op fault.Op) {
		op.Source, op.Attempt = source, attempt
		if _, err := x.Perform(ctx, op); err != nil {
			errs = append(errs, err)
		}
	}
	if len(x.cut) > 0 || x.delayed {
		heal(fault.Op{F: fault.Heal})
	}
	var paused, down []int
	for _, id := range x.Cluster.IDs() {
		if x.paused[id] {
			paused = append(paused, id)
		}
		if x.Cluster.IsDown(id) && !x.stopped[id] {
			down = append(down, id)
		}
	}
	if len(paused) > 0 {
		heal(fault.Op{F: fault.Resume, Nodes: paused})
	}
	if len(down) > 0 {
		heal(fault.Op{F: fault.Restart, Nodes: down})
	}
	return errors.Join(errs...)
}

// Paused lists the nodes paused now.
func (x *Exec) Paused() []int {
	var out []int
	for id := range x.paused {
		out = append(out, id)
	}
	sort.Ints(out)
	return out
}

// waitLeaderAmong polls the given nodes until one of them says it leads.
func waitLeaderAmong(ctx context.Context, c Control, ids []int, within, every time.Duration) int {
	leader := 0
	pollUntil(ctx, within, every, func() bool {
		for _, id := range ids {
			if st, err := c.Status(ctx, id); err == nil && st.Role == "leader" {
				leader = id
				return true
			}
		}
		return false
	})
	return leader
}

func toInts(ids []uint64) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}
