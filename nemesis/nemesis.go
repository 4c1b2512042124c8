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

// MinNodes is the fewest nodes a nemesis can act on (one, unless it says
// more).
func MinNodes(n Nemesis) int {
	if m, ok := n.(interface{ MinNodes() int }); ok {
		return m.MinNodes()
	}
	return 1
}

// Fit keeps the nemeses of a --nemesis value that a cluster of the given
// size can run. One that needs more nodes is left out when it came with
// all (left says which, and why), and refused when it was named.
func Fit(spec string, nems []Nemesis, nodes int) (kept []Nemesis, left map[string]string, err error) {
	named := map[string]bool{}
	for _, name := range strings.Split(spec, ",") {
		named[strings.TrimSpace(name)] = true
	}
	for _, n := range nems {
		need := MinNodes(n)
		switch {
		case need <= nodes:
			kept = append(kept, n)
		case named[n.Name()]:
			return nil, nil, fmt.Errorf("%s needs at least %d nodes, and --nodes %d has fewer (use --nodes %d or more, or leave it out)", n.Name(), need, nodes, need)
		default:
			if left == nil {
				left = map[string]string{}
			}
			left[n.Name()] = fmt.Sprintf("needs at least %d nodes; the cluster has %d", need, nodes)
		}
	}
	return kept, left, nil
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

// MinNodes: a partition needs two sides.
func (p *Partition) MinNodes() int { return 2 }

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
