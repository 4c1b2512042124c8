package nemesis

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/paxtest/paxtest/nemesis/fault"
)

// Replay re-executes a recorded schedule at its recorded times, through the
// same executor that recorded it. When the leader at an op differs from
// the recorded one, the two node ids are swapped for that op and every
// later one, so "kill the leader" stays "kill the leader".
type Replay struct {
	Ops []fault.Op
	Now func() int64

	mu     sync.Mutex
	report ReplayReport
}

// ReplayReport says how closely a replay followed its recording.
type ReplayReport struct {
	Steps       int     `json:"steps"`
	Executed    int     `json:"executed"`
	Remapped    int     `json:"remapped"` // ops whose leader differed and were mapped onto the current one
	MaxLateMs   float64 `json:"max_late_ms"`
	MedianLate  float64 `json:"median_late_ms"`
	Errors      int     `json:"errors"`
	lateSamples []float64
}

// Name is the nemesis name.
func (*Replay) Name() string { return "replay" }

// ids maps recorded node ids onto this run's.
type ids map[int]int

func (m ids) of(id int) int {
	if id == 0 {
		return 0
	}
	return m[id]
}

func (m ids) all(xs []int) []int {
	out := make([]int, len(xs))
	for i, id := range xs {
		out[i] = m.of(id)
	}
	return out
}

// bind makes m(recorded) == actual, swapping whatever mapped there.
func (m ids) bind(recorded, actual int) bool {
	if recorded == 0 || actual == 0 || m[recorded] == actual {
		return false
	}
	for r, a := range m {
		if a == actual {
			m[r] = m[recorded]
		}
	}
	m[recorded] = actual
	return true
}

// onto is recorded op s as this run performs it: its nodes, links and
// membership change mapped onto this run's nodes; what it found left out.
func (m ids) onto(s fault.Op) fault.Op {
	op := fault.Op{F: s.F, Sel: s.Sel, Nodes: m.all(s.Nodes), Node: m.of(s.Node), Ms: s.Ms, Note: s.Note, Source: s.Source, Attempt: s.Attempt}
	for _, l := range s.Links {
		op.Links = append(op.Links, [2]int{m.of(l[0]), m.of(l[1])})
	}
	if s.Change != nil {
		op.Change = &fault.Change{Op: s.Change.Op, Node: m.of(s.Change.Node), With: m.of(s.Change.With)}
	}
	return op
}

// Run performs the ops until ctx is done. Waits on the cluster are
// performed, not timed: later ops shift by however long a wait took, and
// an awaited election maps the recorded winner onto the actual one for
// every later op.
func (p *Replay) Run(ctx context.Context, x *Exec) error {
	p.report.Steps = len(p.Ops)
	all := x.Cluster.IDs()
	if x.Members != nil {
		all = append(all, x.Members.Spares()...) // a spare joins under its own id
	}
	m := ids{}
	for _, id := range all {
		m[id] = id
	}
	remap := func(recorded, actual int) {
		if m.bind(recorded, actual) {
			p.mu.Lock()
			p.report.Remapped++
			p.mu.Unlock()
		}
	}
	observed := map[int]uint64{} // recorded index -> commit point seen here
	rerecorded := map[int]int{}  // recorded index -> index in this run's recording
	var offset int64             // how far behind the recording this replay runs
	var errs []error
	for i, s := range p.Ops {
		due := s.Time
		if s.F.AwaitsCluster() && i > 0 {
			// a wait is recorded when it ended; it began right after the op
			// before, and must begin so here too, or what it waits for may
			// have happened long before the replay looks
			due = min(due, p.Ops[i-1].Time)
		}
		if s.F == fault.Members {
			due -= s.Ms * 1e6 // recorded when answered; sent Ms before
		}
		if d := time.Duration(due + offset - p.Now()); d > 0 && !sleepCtx(ctx, d) {
			return errors.Join(errs...)
		}
		late := float64(p.Now()-due-offset) / 1e6
		if s.Leader != 0 && !s.F.IsWait() {
			remap(s.Leader, x.Cluster.Leader(ctx))
		}
		op := m.onto(s)
		var err error
		var index int
		switch s.F {
		case fault.AwaitCommit:
			op.Slot, op.Ref = observed[s.Ref]+1, rerecorded[s.Ref]
		case fault.AwaitAccepted:
			if s.Sel != nil && s.Sel.Slot != "" { // "at": in the slot bound at op Ref
				op.Slot, op.Ref = observed[s.Ref]+1, rerecorded[s.Ref]
			}
		case fault.AwaitLeader:
			op.Node = 0
		}
		op, index, err = x.do(ctx, op)
		switch s.F {
		case fault.AwaitAccepted, fault.Observe:
			observed[i], rerecorded[i] = op.Slot, index
			offset = p.Now() - s.Time
		case fault.AwaitLeader:
			remap(s.Node, op.Node)
			offset = p.Now() - s.Time
		case fault.AwaitCaughtUp, fault.AwaitCommit, fault.Members:
			offset = p.Now() - s.Time // the next ops follow the answer
		}
		if isAbandon(err) || ctx.Err() != nil {
			err = nil // a wait that found nothing, or the run ended: the replay goes on, as recorded
		}
		p.mu.Lock()
		p.report.Executed++
		p.report.lateSamples = append(p.report.lateSamples, late)
		if err != nil {
			p.report.Errors++
			errs = append(errs, err)
		}
		p.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Report summarises the replay so far.
func (p *Replay) Report() ReplayReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.report
	s := append([]float64(nil), r.lateSamples...)
	sort.Float64s(s)
	if len(s) > 0 {
		r.MaxLateMs, r.MedianLate = s[len(s)-1], s[len(s)/2]
	}
	return r
}
