package nemesis

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

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

// ScheduleFile is the executed schedule inside a run directory.
const ScheduleFile = "schedule.jsonl"

// Step is one primitive fault action as it was executed: a replay
// re-executes these.
type Step struct {
	Time int64 `json:"time"` // ns since run start
	// Op: block, delay, kill, restart, pause, resume; or a scenario's wait on the
	// cluster: observe (Node's commit point, in Slot), await-accepted (the
	// same, once Node holds an accepted, unchosen slot), await-leader (one of
	// Nodes elected; the winner in Node), await-commit (Node's commit point
	// past the point observed at step Ref).
	Op     string   `json:"op"`
	Node   int      `json:"node,omitempty"`
	Nodes  []int    `json:"nodes,omitempty"`
	Links  [][2]int `json:"links,omitempty"` // block: the links cut (none: heal)
	Leader int      `json:"leader"`          // the leader just before the step (0: none)
	Slot   uint64   `json:"slot,omitempty"`
	Ref    int      `json:"ref,omitempty"`
	Ms     int64    `json:"ms,omitempty"` // delay: how long the links hold each byte; members: how long the change took to be chosen
	// Note (op "roles"): how a schedule's attempt bound its roles; a replay
	// copies it into its own recording.
	Note string `json:"note,omitempty"`
}

// Recorder wraps a Control and a FaultLayer and appends every action to
// the schedule file as it happens.
type Recorder struct {
	Control
	FaultLayer
	now func() int64

	mu     sync.Mutex
	w      *bufio.Writer
	f      *os.File
	err    error
	leader int // the leader last seen by the poller
	count  int // steps recorded
	stop   chan struct{}
	done   chan struct{}
}

// NewRecorder creates path (never overwriting) and records into it.
func NewRecorder(path string, c Control, fl FaultLayer, now func() int64) (*Recorder, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create schedule %s: %w", path, err)
	}
	r := &Recorder{Control: c, FaultLayer: fl, now: now, f: f, w: bufio.NewWriter(f), stop: make(chan struct{}), done: make(chan struct{})}
	go r.poll()
	return r, nil
}

// poll keeps the leader current in the background, so recording a step
// never waits on a paused node's status.
func (r *Recorder) poll() {
	defer close(r.done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		id := r.Control.Leader(ctx)
		cancel()
		r.mu.Lock()
		r.leader = id
		r.mu.Unlock()
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
	}
}

func (r *Recorder) currentLeader() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leader
}

// Log records a scenario's wait on the cluster and returns its index.
func (r *Recorder) Log(s Step) int { return r.record(s) }

func (r *Recorder) record(s Step) int {
	s.Time = r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	index := r.count
	r.count++
	b, err := json.Marshal(s)
	if err == nil {
		_, err = r.w.Write(append(b, '\n'))
	}
	if err == nil {
		err = r.w.Flush()
	}
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("write schedule: %w", err)
	}
	return index
}

// Block records and applies a partition (nil: heal).
func (r *Recorder) Block(links [][2]int) error {
	r.record(Step{Op: "block", Links: links, Leader: r.currentLeader()})
	return r.FaultLayer.Block(links)
}

// Delay records and applies a link delay; the wrapped layer must support it.
func (r *Recorder) Delay(links [][2]int, d time.Duration) error {
	if !canDelay(r.FaultLayer) && len(links) == 0 {
		return nil // nothing to clear
	}
	r.record(Step{Op: "delay", Links: links, Ms: d.Milliseconds(), Leader: r.currentLeader()})
	return delayLinks(r.FaultLayer, links, d)
}

// canDelay reports whether fl (or the layer a Recorder wraps) delays links.
func canDelay(fl FaultLayer) bool {
	if r, ok := fl.(*Recorder); ok {
		fl = r.FaultLayer
	}
	_, ok := fl.(Delayer)
	return ok
}

// delayLinks delays links on fl, or says why it cannot.
func delayLinks(fl FaultLayer, links [][2]int, d time.Duration) error {
	dl, ok := fl.(Delayer)
	if !ok && len(links) == 0 {
		return nil // nothing to clear
	}
	if !ok {
		return fmt.Errorf("delaying links needs --net proxy; this fault layer can only cut them")
	}
	return dl.Delay(links, d)
}

// Kill records and applies kill -9.
func (r *Recorder) Kill(id int) error {
	r.record(Step{Op: "kill", Node: id, Leader: r.currentLeader()})
	return r.Control.Kill(id)
}

// Restart records and applies a restart.
func (r *Recorder) Restart(ctx context.Context, id int) error {
	if !r.Control.IsDown(id) {
		return nil // nothing to restart: not an action
	}
	r.record(Step{Op: "restart", Node: id})
	return r.Control.Restart(ctx, id)
}

// Pause records and applies SIGSTOP.
func (r *Recorder) Pause(id int) error {
	r.record(Step{Op: "pause", Node: id, Leader: r.currentLeader()})
	return r.Control.Pause(id)
}

// Resume records and applies SIGCONT.
func (r *Recorder) Resume(id int) error {
	r.record(Step{Op: "resume", Node: id})
	return r.Control.Resume(id)
}

// Spares forwards to the cluster (nothing to record).
func (r *Recorder) Spares() []int {
	if mc, ok := r.Control.(MemberControl); ok {
		return mc.Spares()
	}
	return nil
}

// Join records and starts a node out of play.
func (r *Recorder) Join(ctx context.Context, id int) error {
	mc, ok := r.Control.(MemberControl)
	if !ok {
		return fmt.Errorf("this cluster has no spare nodes")
	}
	r.record(Step{Op: "join", Node: id, Leader: r.currentLeader()})
	return mc.Join(ctx, id)
}

// Retire records and retires a node.
func (r *Recorder) Retire(id int) error {
	mc, ok := r.Control.(MemberControl)
	if !ok {
		return fmt.Errorf("this cluster has no spare nodes")
	}
	r.record(Step{Op: "retire", Node: id, Leader: r.currentLeader()})
	return mc.Retire(id)
}

// ChangeMembers records and sends a membership change.
func (r *Recorder) ChangeMembers(ctx context.Context, req api.MembersRequest) (api.MembersResponse, error) {
	mc, ok := r.Control.(MemberControl)
	if !ok {
		return api.MembersResponse{}, fmt.Errorf("this cluster has no spare nodes")
	}
	// recorded when answered, with how long it took: a replay sends it that
	// long before, and times the next steps from its answer, as here
	leader, start := r.currentLeader(), r.now()
	res, err := mc.ChangeMembers(ctx, req)
	r.record(Step{Op: "members", Note: req.Op, Node: int(req.Node), Nodes: []int{int(req.With)}, Leader: leader, Ms: (r.now() - start) / 1e6})
	return res, err
}

// Close stops the poller, flushes and closes the schedule file.
func (r *Recorder) Close() error {
	close(r.stop)
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.w.Flush()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	if r.err != nil {
		return r.err
	}
	return err
}

// ReadSchedule parses a schedule file, naming the line of bad input.
func ReadSchedule(path string) ([]Step, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("schedule %s: %w", path, err)
	}
	defer f.Close()
	var out []Step
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		var s Step
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return nil, fmt.Errorf("schedule %s line %d: %w", path, line, err)
		}
		switch s.Op {
		case "block", "delay", "kill", "restart", "pause", "resume", "observe", "await-accepted", "await-leader", "await-commit", "roles", "join", "retire", "members":
		default:
			return nil, fmt.Errorf("schedule %s line %d: unknown op %q", path, line, s.Op)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// Replay re-executes a recorded schedule at its recorded times. When the
// leader at a step differs from the recorded one, the two node ids are
// swapped in that step, so "kill the leader" stays "kill the leader".
type Replay struct {
	Steps []Step
	Now   func() int64
	// Record receives each executed step as a fault start or stop.
	Record func(Fault, error)

	mu     sync.Mutex
	report ReplayReport
}

// ReplayReport says how closely a replay followed its recording.
type ReplayReport struct {
	Steps       int     `json:"steps"`
	Executed    int     `json:"executed"`
	Remapped    int     `json:"remapped"` // steps whose leader differed and were mapped onto the current one
	MaxLateMs   float64 `json:"max_late_ms"`
	MedianLate  float64 `json:"median_late_ms"`
	Errors      int     `json:"errors"`
	lateSamples []float64
}

// Name is the nemesis name.
func (*Replay) Name() string { return "replay" }

// Run executes the steps until ctx is done; it is the whole nemesis. Waits
// on the cluster are performed, not timed: later steps shift by however
// long a wait took, and an awaited election maps the recorded winner onto
// the actual one for every later step.
func (p *Replay) Run(ctx context.Context, env *Env) error {
	p.report.Steps = len(p.Steps)
	ids := env.Cluster.IDs()
	if mc, ok := env.Cluster.(MemberControl); ok {
		ids = append(ids, mc.Spares()...) // a spare joins under its own id
	}
	pi := map[int]int{} // recorded id -> id in this run
	for _, id := range ids {
		pi[id] = id
	}
	bind := func(recorded, actual int) { // make pi(recorded) == actual
		if recorded == 0 || actual == 0 || pi[recorded] == actual {
			return
		}
		for r, a := range pi {
			if a == actual {
				pi[r] = pi[recorded]
			}
		}
		pi[recorded] = actual
		p.mu.Lock()
		p.report.Remapped++
		p.mu.Unlock()
	}
	observed := map[int]uint64{}
	rerecorded := map[int]int{} // observe step index -> its index in this run's recording
	var offset int64            // how far behind the recording this replay runs
	var errs []error
	for i, s := range p.Steps {
		due := s.Time
		if strings.HasPrefix(s.Op, "await-") && i > 0 {
			// a wait is recorded when it ended; it began right after the
			// step before, and must begin so here too, or what it waits for
			// may have happened long before the replay looks
			due = min(due, p.Steps[i-1].Time)
		}
		if s.Op == "members" {
			due -= s.Ms * 1e6 // recorded when answered; sent Ms before
		}
		if d := time.Duration(due + offset - p.Now()); d > 0 {
			select {
			case <-ctx.Done():
				return errors.Join(errs...)
			case <-time.After(d):
			}
		}
		late := float64(p.Now()-due-offset) / 1e6
		if s.Leader != 0 && (s.Op == "block" || s.Op == "delay" || s.Op == "kill" || s.Op == "pause") {
			bind(s.Leader, env.Cluster.Leader(ctx))
		}
		m := func(id int) int {
			if id == 0 {
				return 0
			}
			return pi[id]
		}
		var err error
		switch s.Op {
		case "block":
			links := make([][2]int, 0, len(s.Links))
			for _, l := range s.Links {
				links = append(links, [2]int{m(l[0]), m(l[1])})
			}
			err = env.Net.Block(links)
		case "delay":
			links := make([][2]int, 0, len(s.Links))
			for _, l := range s.Links {
				links = append(links, [2]int{m(l[0]), m(l[1])})
			}
			err = delayLinks(env.Net, links, time.Duration(s.Ms)*time.Millisecond)
		case "kill":
			err = env.Cluster.Kill(m(s.Node))
		case "restart":
			err = env.Cluster.Restart(context.Background(), m(s.Node))
		case "pause":
			err = env.Cluster.Pause(m(s.Node))
		case "resume":
			err = env.Cluster.Resume(m(s.Node))
		case "observe":
			if st, serr := env.Cluster.Status(ctx, m(s.Node)); serr == nil {
				observed[i] = st.CommitPoint
			}
			// the replay's own recording is replayable too
			rerecorded[i] = env.log(Step{Op: "observe", Node: m(s.Node), Slot: observed[i]})
		case "await-accepted":
			pollUntil(ctx, 3*time.Second, 5*time.Millisecond, func() bool {
				st, serr := env.Cluster.Status(ctx, m(s.Node))
				if serr != nil {
					return false
				}
				observed[i] = st.CommitPoint
				return st.MaxSlot > st.CommitPoint
			})
			rerecorded[i] = env.log(Step{Op: "await-accepted", Node: m(s.Node), Slot: observed[i]})
			offset = p.Now() - s.Time
		case "await-leader":
			var cands []int
			for _, id := range s.Nodes {
				cands = append(cands, m(id))
			}
			won := waitLeaderAmong(ctx, env, cands, 5*time.Second, 2*time.Millisecond)
			bind(s.Node, won)
			env.log(Step{Op: "await-leader", Nodes: cands, Node: won})
			offset = p.Now() - s.Time
		case "roles":
			env.log(Step{Op: "roles", Note: s.Note})
		case "join", "retire", "members":
			mc, ok := env.Cluster.(MemberControl)
			if !ok {
				err = fmt.Errorf("replay %s: this cluster has no spare nodes", s.Op)
				break
			}
			switch s.Op {
			case "join":
				err = mc.Join(context.Background(), m(s.Node))
			case "retire":
				err = mc.Retire(m(s.Node))
			default:
				with := 0
				if len(s.Nodes) > 0 {
					with = m(s.Nodes[0])
				}
				_, err = mc.ChangeMembers(ctx, api.MembersRequest{Op: s.Note, Node: uint64(m(s.Node)), With: uint64(with)})
				offset = p.Now() - s.Time // the next steps follow the answer
			}
		case "await-commit":
			target := observed[s.Ref] + 1
			pollUntil(ctx, 3*time.Second, time.Millisecond, func() bool {
				st, serr := env.Cluster.Status(ctx, m(s.Node))
				return serr == nil && st.CommitPoint >= target
			})
			env.log(Step{Op: "await-commit", Node: m(s.Node), Ref: rerecorded[s.Ref]})
			offset = p.Now() - s.Time
		}
		if p.Record != nil && s.Op != "observe" && s.Op != "roles" && !strings.HasPrefix(s.Op, "await-") {
			p.Record(asFault(Step{Op: s.Op, Node: m(s.Node), Links: s.Links}), err)
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

// asFault names a replayed step as the history names faults.
func asFault(s Step) Fault {
	switch s.Op {
	case "block":
		if len(s.Links) == 0 {
			return Fault{F: "stop-partition", Detail: "replayed: all links open"}
		}
		var cut []int
		seen := map[int]bool{}
		for _, l := range s.Links {
			for _, id := range l {
				if !seen[id] {
					seen[id] = true
					cut = append(cut, id)
				}
			}
		}
		sort.Ints(cut)
		return Fault{F: "start-partition", Targets: cut, Detail: fmt.Sprintf("replayed: %d links cut", len(s.Links))}
	case "kill":
		return Fault{F: "start-kill", Targets: []int{s.Node}, Detail: "replayed: kill -9"}
	case "join":
		return Fault{F: "start-membership", Targets: []int{s.Node}, Detail: "replayed: start spare"}
	case "retire":
		return Fault{F: "start-membership", Targets: []int{s.Node}, Detail: "replayed: retire"}
	case "members":
		return Fault{F: "start-membership", Targets: []int{s.Node}, Detail: "replayed: membership change " + s.Note}
	case "delay":
		return Fault{F: "start-delay", Detail: fmt.Sprintf("replayed: %d links delayed %d ms", len(s.Links), s.Ms)}
	case "restart":
		return Fault{F: "stop-kill", Targets: []int{s.Node}, Detail: "replayed: restart"}
	case "pause":
		return Fault{F: "start-pause", Targets: []int{s.Node}, Detail: "replayed: SIGSTOP"}
	default:
		return Fault{F: "stop-pause", Targets: []int{s.Node}, Detail: "replayed: SIGCONT"}
	}
}
