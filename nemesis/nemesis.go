// Package nemesis owns faults: the nemeses (partitions of several shapes,
// kill -9 and restart, pause and resume, leader kills, membership changes,
// the leader-aware scenarios and the schedule language they are written
// in), the mix that draws and overlaps them, and Exec, the one executor
// that performs every fault op (nemesis/fault), records it and hands it to
// the history; Replay re-performs a recorded schedule through it.
//
// It acts on the cluster only through Control and MemberControl and on
// traffic only through the fault layers of nemesis/network; it must not
// generate client operations or judge results.
package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/paxtest/paxtest/nemesis/fault"
)

// Nemesis is one kind of fault. Start puts one in force, Stop lifts it;
// both act only through the executor, as fault ops.
type Nemesis interface {
	Name() string
	Start(ctx context.Context, x *Exec) error
	Stop(ctx context.Context, x *Exec) error
}

// Exclusive is implemented by a nemesis that needs the cluster healed and
// to itself while it runs (a scenario); the others may overlap.
type Exclusive interface{ Exclusive() bool }

// Pacer is implemented by a nemesis that sets its own gap between faults.
type Pacer interface {
	Gap(interval time.Duration) time.Duration
}

// Kinds lists the accepted --nemesis values.
func Kinds() []string {
	return []string{"none", "partition", "kill", "pause", "leader-kill", "leader-pause", "crash-quorum", "elect-lagging", "figure8", "figure8-regain", "zombie-leader", "bridge-restart", "fresh-leader-kill", "membership", "membership-split", "power-loss", "slow-links", "reset-links", "corrupt", "all"}
}

// scripted names the nemeses written as built-in schedules (nemesis/scripts).
var scripted = map[string][]string{
	"figure8":           {"figure8", "figure8-regain"},
	"figure8-regain":    {"figure8-regain"},
	"zombie-leader":     {"zombie-leader"},
	"bridge-restart":    {"bridge-restart"},
	"fresh-leader-kill": {"fresh-leader-kill"},
	"membership-split":  {"membership-split"},
}

// inAll is what --nemesis all draws from: every fault kind, with the
// leader-aware scenarios in rotation, each built-in schedule a scenario of
// its own (figure8 and figure8-regain take turns under --nemesis figure8,
// but each has its place in the rotation here); membership needs spare
// nodes and is not part of it. Below the network: harsh links, bit flips
// in the files the system checks (forAll), and power losses where the
// machine can mount the lazy disk.
var inAll = []string{"partition", "kill", "pause", "leader-kill", "leader-pause",
	"slow-links", "reset-links", "corrupt", "power-loss",
	"figure8", "figure8-regain", "zombie-leader", "bridge-restart", "fresh-leader-kill", "crash-quorum", "elect-lagging"}

// forAll is a kind as the mix of --nemesis all runs it, where that differs
// from the kind asked for by name.
func forAll(n Nemesis) Nemesis {
	switch n := n.(type) {
	case *Corruption:
		n.FlipsOnly, n.Optional = true, true
	case *Process:
		n.Optional = n.F == fault.PowerLoss
	}
	return n
}

// weight is how often the mix draws each kind that may overlap others:
// splits and kills first.
var weight = map[string]int{"partition": 6, "kill": 4, "pause": 3, "leader-kill": 2, "leader-pause": 2, "power-loss": 2, "membership": 4}

func weightOf(name string) int {
	if w, ok := weight[name]; ok {
		return w
	}
	return 1
}

// Parse builds the nemeses of a comma-separated --nemesis value. "all" is
// every kind in inAll; "none" (or "") is no nemesis.
func Parse(spec, shape string) ([]Nemesis, error) {
	if err := ValidShape(shape); err != nil {
		return nil, err
	}
	// a kind asked for by name runs as named, even if all has it too
	named := map[string]bool{}
	for _, name := range strings.Split(spec, ",") {
		named[strings.TrimSpace(name)] = true
	}
	seen := map[string]bool{}
	var out []Nemesis
	var failed error
	add := func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		n, err := build(name, shape)
		if err != nil {
			failed = errors.Join(failed, err)
			return
		}
		if !named[name] {
			n = forAll(n)
		}
		out = append(out, n)
	}
	for _, name := range strings.Split(spec, ",") {
		switch name = strings.TrimSpace(name); name {
		case "", "none":
		case "all":
			for _, k := range inAll {
				add(k)
			}
		default:
			if !containsName(Kinds(), name) {
				return nil, fmt.Errorf("unknown nemesis %q (accepted: %s)", name, strings.Join(Kinds(), ", "))
			}
			add(name)
		}
	}
	return out, failed
}

func build(name, shape string) (Nemesis, error) {
	if names, ok := scripted[name]; ok {
		return FromScripts(name, names...)
	}
	switch name {
	case "partition":
		return &Partition{Shape: shape}, nil
	case "kill":
		return &Process{F: fault.Kill, Label: "kill", Targets: processTargets}, nil
	case "pause":
		return &Process{F: fault.Pause, Label: "pause", Targets: processTargets}, nil
	case "leader-kill":
		return &Process{F: fault.Kill, Label: "leader-kill", Targets: []weighted{{"leader", 1}}}, nil
	case "leader-pause":
		return &Process{F: fault.Pause, Label: "leader-pause", Targets: []weighted{{"leader", 1}}}, nil
	case "slow-links":
		return &SlowLinks{}, nil
	case "reset-links":
		return &ResetLinks{}, nil
	case "corrupt":
		return &Corruption{}, nil
	case "power-loss":
		return &Process{F: fault.PowerLoss, Label: "power-loss", Targets: powerLossTargets}, nil
	case "crash-quorum":
		return &CrashQuorum{}, nil
	case "elect-lagging":
		return &ElectLagging{}, nil
	case "membership":
		split, err := FromScripts("membership-split", "membership-split")
		return &Membership{Split: split}, err
	}
	return nil, fmt.Errorf("unknown nemesis %q", name)
}

// weighted is a choice and its weight.
type weighted struct {
	what string
	w    int
}

// draw picks one choice, each as likely as its weight.
func draw(r *rand.Rand, ws []weighted) string { return ws[drawIndex(r, ws)].what }

func drawIndex(r *rand.Rand, ws []weighted) int {
	total := 0
	for _, c := range ws {
		total += c.w
	}
	x := r.Intn(total)
	for i, c := range ws {
		if x < c.w {
			return i
		}
		x -= c.w
	}
	return len(ws) - 1
}

// processTargets are whom kill and pause act on, weighted toward what
// exposes quorum and recovery bugs: a majority (the survivors cannot
// decide; what the majority acknowledged must be on its disks), the
// leader, a minority or one node.
var processTargets = []weighted{{"one", 3}, {"minority", 3}, {"majority", 2}, {"leader", 2}}

// powerLossTargets are whom a power loss takes down: mostly a majority at
// once (what it acknowledged must be on its disks: a write the survivors
// never saw is then lost unless it was synced), or every node, or one.
var powerLossTargets = []weighted{{"majority", 3}, {"all", 1}, {"one", 1}}

// Partition cuts peer links in a shape and heals them.
type Partition struct{ Shape string }

// Name is the --nemesis value.
func (p *Partition) Name() string { return "partition" }

// Start cuts the links of one partition.
func (p *Partition) Start(ctx context.Context, x *Exec) error {
	shape := p.Shape
	if shape == ShapeRandom {
		shape = draw(x.Rand, shapeWeights)
	}
	return ignoreAbandon(ctx, x, fault.Op{F: fault.Partition, Sel: &fault.Sel{Shape: shape}, Source: "partition"})
}

// Stop opens every link.
func (p *Partition) Stop(ctx context.Context, x *Exec) error {
	_, err := x.Perform(ctx, fault.Op{F: fault.Heal, Source: "partition"})
	return err
}

// Process kills (or pauses, or cuts the power of) a target drawn from
// Targets and restarts (or resumes) what it took down on Stop.
type Process struct {
	F       fault.F // kill, pause or power-loss
	Label   string
	Targets []weighted
	// Optional: a power loss the run has no lazy disk for is a kill (it
	// is one of the mix's kinds, not asked for by name)
	Optional bool
	down     []int
}

// Name is the --nemesis value.
func (p *Process) Name() string { return p.Label }

// Start kills or pauses the drawn target.
func (p *Process) Start(ctx context.Context, x *Exec) error {
	f := p.F
	if f == fault.PowerLoss && p.Optional && x.Disk == nil {
		// without the lazy disk, what a power loss does to a node is
		// what a kill does: the page cache keeps what it wrote
		f = fault.Kill
	}
	target := draw(x.Rand, p.Targets)
	// half of the power losses tear a write
	tear := f == fault.PowerLoss && x.Rand.Intn(2) == 0
	op, err := x.Do(ctx, fault.Op{F: f, Sel: &fault.Sel{Set: []string{target}}, Tear: tear, Source: p.Label}, nil)
	if errors.Is(err, ErrAbandon) {
		x.Note(p.Label, 0, fmt.Sprintf("%s %s: %v", f, target, err))
		return nil
	}
	p.down = append(p.down, op.Nodes...)
	return err
}

// NeedsLazyDisk: a power loss drops writes only the lazy disk holds.
func (p *Process) NeedsLazyDisk() bool { return p.F == fault.PowerLoss && !p.Optional }

// NeedsLocalData: a power loss asked for by name acts on data on this
// machine (the lazy disk under it).
func (p *Process) NeedsLocalData() bool { return p.NeedsLazyDisk() }

// WantsLazyDisk: an optional power loss runs on the lazy disk where the
// machine can mount it.
func (p *Process) WantsLazyDisk() bool { return p.F == fault.PowerLoss && p.Optional }

// Stop restarts or resumes what Start took down.
func (p *Process) Stop(ctx context.Context, x *Exec) error {
	ids := p.down
	p.down = nil
	if len(ids) == 0 {
		return nil
	}
	sort.Ints(ids)
	undo := map[fault.F]fault.F{fault.Kill: fault.Restart, fault.PowerLoss: fault.Restart, fault.Pause: fault.Resume}[p.F]
	_, err := x.Perform(ctx, fault.Op{F: undo, Nodes: ids, Source: p.Label})
	return err
}

// ignoreAbandon performs op; a target that could not be found (no leader)
// becomes a note.
func ignoreAbandon(ctx context.Context, x *Exec, op fault.Op) error {
	_, err := x.Do(ctx, op, nil)
	if errors.Is(err, ErrAbandon) {
		x.Note(op.Source, 0, fmt.Sprintf("%s skipped: %v", op.F, err))
		return nil
	}
	return err
}

// Schedule drives nemeses as Jepsen's combined nemesis does: after each
// gap it draws one kind (by weight) and, unless that kind is in force or
// MaxActive kinds are, starts it for a lifetime of its own; faults of
// different kinds overlap (a split while a node is paused or down, a
// majority killed while the network is cut). A share of the draws runs a
// scenario (Exclusive) instead, each in turn: it first lifts everything
// and waits for a leader, runs one attempt, holds it for a tenth to a
// fifth of the interval and lifts what it did. Lifetimes vary between a
// fifth of the interval and the whole of it, gaps between a fifth and a
// half. Run stops when ctx is
// done, lifting every fault.
type Schedule struct {
	Nemeses  []Nemesis
	Interval time.Duration
	X        *Exec
	// MaxActive bounds the kinds in force at once (0: 2).
	MaxActive int
	// ScenarioShare is the part of draws that run a scenario (Exclusive),
	// taken in turn from a shuffled rotation (0: DefaultScenarioShare).
	ScenarioShare float64

	mu     sync.Mutex
	active []*activeFault
	errs   []error
}

type activeFault struct {
	n     Nemesis
	until time.Time
}

// Active names the faults in force, or "".
func (s *Schedule) Active() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for _, a := range s.active {
		names = append(names, a.n.Name())
	}
	return strings.Join(names, "+")
}

// Errors returns the errors of faults that could not be performed.
func (s *Schedule) Errors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.errs...)
}

func (s *Schedule) fail(err error) {
	if err == nil {
		return
	}
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
}

// between draws a duration in [lo, hi].
func (s *Schedule) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.X.Rand.Int63n(int64(hi-lo)+1))
}

func (s *Schedule) gap() time.Duration {
	if len(s.Nemeses) == 1 {
		if p, ok := s.Nemeses[0].(Pacer); ok {
			return p.Gap(s.Interval)
		}
	}
	return s.between(s.Interval/5, s.Interval/2)
}

func (s *Schedule) lifetime() time.Duration { return s.between(s.Interval/5, s.Interval) }

func (s *Schedule) isActive(n Nemesis) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.active {
		if a.n == n {
			return true
		}
	}
	return false
}

func (s *Schedule) setActive(n Nemesis, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active = append(s.active, &activeFault{n: n, until: until})
}

// due is the active fault that ends first, or nil.
func (s *Schedule) due() *activeFault {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first *activeFault
	for _, a := range s.active {
		if first == nil || a.until.Before(first.until) {
			first = a
		}
	}
	return first
}

// Run blocks until ctx is done, then lifts every fault (with its own deadline).
func (s *Schedule) Run(ctx context.Context) {
	if len(s.Nemeses) == 0 {
		<-ctx.Done()
		return
	}
	defer s.stopAll()
	maxActive := s.MaxActive
	if maxActive <= 0 {
		maxActive = 2
	}
	share := s.ScenarioShare
	if share <= 0 {
		share = DefaultScenarioShare
	}
	var choices []weighted
	var kinds, scenarios []Nemesis
	for _, n := range s.Nemeses {
		if isExclusive(n) {
			scenarios = append(scenarios, n)
			continue
		}
		kinds = append(kinds, n)
		choices = append(choices, weighted{n.Name(), weightOf(n.Name())})
	}
	var rotation []Nemesis
	pick := func() Nemesis {
		if len(scenarios) > 0 && (len(kinds) == 0 || s.X.Rand.Float64() < share) {
			if len(rotation) == 0 {
				rotation = append(rotation, scenarios...)
				s.X.Rand.Shuffle(len(rotation), func(i, j int) { rotation[i], rotation[j] = rotation[j], rotation[i] })
			}
			n := rotation[0]
			rotation = rotation[1:]
			return n
		}
		return kinds[drawIndex(s.X.Rand, choices)]
	}
	next := time.Now().Add(s.gap())
	for {
		wake := next
		end := s.due()
		if end != nil && end.until.Before(wake) {
			wake = end.until
		}
		if !sleepCtx(ctx, time.Until(wake)) {
			return
		}
		if end != nil && !end.until.After(time.Now()) {
			s.stop(end)
			continue
		}
		next = time.Now().Add(s.gap())
		n := pick()
		switch {
		case isExclusive(n):
			// a scenario starts from a healed cluster with a leader: its
			// waits are on the cluster, and a leaderless one abandons it
			s.stopAll()
			s.settle(ctx)
			s.setActive(n, time.Time{})
			s.started(ctx, n)
			// what it exposes shows while it runs: a short hold, then on
			ok := sleepCtx(ctx, s.between(s.Interval/10, s.Interval/5))
			s.stopAll()
			if !ok {
				return
			}
			next = time.Now().Add(s.between(s.Interval/10, s.Interval/5))
		case s.isActive(n) || len(s.active) >= maxActive:
		default:
			s.setActive(n, time.Now().Add(s.lifetime()))
			s.started(ctx, n)
		}
	}
}

// DefaultScenarioShare is the part of the default mix's draws that run a
// scenario: half, so that each scenario of the rotation comes round in a
// one-minute run, and the other half overlapping faults of every kind.
const DefaultScenarioShare = 0.5

// settle waits, briefly, until some node leads.
func (s *Schedule) settle(ctx context.Context) {
	pollUntil(ctx, s.Interval/2, 20*time.Millisecond, func() bool { return s.X.Cluster.Leader(ctx) != 0 })
}

// started starts n; a failure because the run ended meanwhile is not one.
func (s *Schedule) started(ctx context.Context, n Nemesis) {
	if err := n.Start(ctx, s.X); ctx.Err() == nil {
		s.fail(err)
	}
}

// stop lifts one fault, with a deadline of its own (the run's may be over).
func (s *Schedule) stop(a *activeFault) {
	hctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s.fail(a.n.Stop(hctx, s.X))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, b := range s.active {
		if b == a {
			s.active = append(s.active[:i], s.active[i+1:]...)
			break
		}
	}
}

func (s *Schedule) stopAll() {
	for {
		a := s.due()
		if a == nil {
			return
		}
		s.stop(a)
	}
}

func isExclusive(n Nemesis) bool {
	e, ok := n.(Exclusive)
	return ok && e.Exclusive()
}

// sleepCtx waits d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func containsName(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}
