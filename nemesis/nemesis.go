package nemesis

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"time"
)

// Fault describes one injection or heal, for the history.
type Fault struct {
	F       string // e.g. "start-partition", "stop-kill"
	Targets []int
	Detail  string
}

// Env is what a nemesis acts on.
type Env struct {
	Cluster Control
	Net     FaultLayer
	Rand    *rand.Rand
	// Note records a step inside a multi-step fault (a scenario's stages).
	Note func(Fault)
	// Log records a scenario's wait on the cluster in the executed
	// schedule (nil: not recording); it returns the step's index.
	Log func(Step) int
}

// Pacer is implemented by a nemesis that sets its own gap between faults.
type Pacer interface {
	Gap(interval time.Duration) time.Duration
}

// Nemesis injects one kind of fault and heals it.
type Nemesis interface {
	Name() string
	Inject(ctx context.Context, env *Env) (Fault, error)
	Heal(ctx context.Context, env *Env) (Fault, error)
}

// Kinds lists the accepted --nemesis values.
func Kinds() []string {
	return []string{"none", "partition", "kill", "pause", "leader-kill", "leader-pause", "crash-quorum", "elect-lagging", "figure8", "zombie-leader", "bridge-restart", "fresh-leader-kill", "membership", "membership-split", "all"}
}

// scripted names the nemeses written as built-in schedules (nemesis/scripts).
var scripted = map[string][]string{
	"figure8":           {"figure8", "figure8-regain"},
	"zombie-leader":     {"zombie-leader"},
	"bridge-restart":    {"bridge-restart"},
	"fresh-leader-kill": {"fresh-leader-kill"},
	"membership-split":  {"membership-split"},
}

// FromScripts builds a nemesis from built-in schedules.
func FromScripts(label string, names ...string) (*Scripted, error) {
	s := &Scripted{Label: label}
	for _, n := range names {
		sc, err := Builtin(n)
		if err != nil {
			return nil, err
		}
		s.Scripts = append(s.Scripts, sc)
	}
	return s, nil
}

// Parse builds the nemeses of a comma-separated --nemesis value. "all" is
// every kind; "none" (or "") is no nemesis.
func Parse(spec, shape string) ([]Nemesis, error) {
	if err := ValidShape(shape); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []Nemesis
	var failed error
	add := func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		if names, ok := scripted[name]; ok {
			s, err := FromScripts(name, names...)
			if err != nil {
				failed = err
			}
			out = append(out, s)
			return
		}
		switch name {
		case "partition":
			out = append(out, &Partition{Shape: shape})
		case "kill":
			out = append(out, &Kill{})
		case "pause":
			out = append(out, &Pause{})
		case "leader-kill":
			out = append(out, &Kill{Leader: true})
		case "leader-pause":
			out = append(out, &Pause{Leader: true})
		case "crash-quorum":
			out = append(out, &CrashQuorum{})
		case "membership":
			split, err := FromScripts("membership-split", "membership-split")
			if err != nil {
				failed = err
			}
			out = append(out, &Membership{Split: split})
		case "elect-lagging":
			out = append(out, &ElectLagging{})
		}
	}
	for _, name := range strings.Split(spec, ",") {
		switch name = strings.TrimSpace(name); name {
		case "", "none":
		case "all":
			for _, k := range Kinds() {
				if k != "none" && k != "all" && k != "membership" && k != "membership-split" {
					add(k)
				}
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

// Partition cuts peer links in a shape and heals them.
type Partition struct{ Shape string }

func (p *Partition) Name() string { return "partition" }

func (p *Partition) Inject(ctx context.Context, env *Env) (Fault, error) {
	leader := 0
	if p.Shape == ShapeLeader || p.Shape == ShapeRandom {
		leader = env.Cluster.Leader(ctx)
	}
	c := MakeCut(p.Shape, env.Cluster.IDs(), leader, env.Rand)
	if err := env.Net.Block(c.Links); err != nil {
		return Fault{}, fmt.Errorf("partition %s: %w", c.Shape, err)
	}
	return Fault{F: "start-partition", Targets: c.Targets, Detail: c.Detail}, nil
}

func (p *Partition) Heal(_ context.Context, env *Env) (Fault, error) {
	if err := env.Net.Block(nil); err != nil {
		return Fault{}, fmt.Errorf("heal partition: %w", err)
	}
	return Fault{F: "stop-partition", Detail: "all links open"}, nil
}

// Kill sends SIGKILL to a minority of nodes (or the current leader) and
// restarts them on heal.
type Kill struct {
	Leader bool
	killed []int
}

func (k *Kill) Name() string {
	if k.Leader {
		return "leader-kill"
	}
	return "kill"
}

func (k *Kill) Inject(ctx context.Context, env *Env) (Fault, error) {
	var victims []int
	if k.Leader {
		id := env.Cluster.Leader(ctx)
		if id == 0 {
			return Fault{F: "start-" + k.Name(), Detail: "no leader to kill"}, nil
		}
		victims = []int{id}
	} else {
		victims = minority(env)
	}
	for _, id := range victims {
		if err := env.Cluster.Kill(id); err != nil {
			return Fault{}, err
		}
		k.killed = append(k.killed, id)
	}
	return Fault{F: "start-" + k.Name(), Targets: victims, Detail: "kill -9 " + names(victims)}, nil
}

func (k *Kill) Heal(ctx context.Context, env *Env) (Fault, error) {
	restarted := k.killed
	k.killed = nil
	for _, id := range restarted {
		if err := env.Cluster.Restart(ctx, id); err != nil {
			return Fault{}, err
		}
	}
	return Fault{F: "stop-" + k.Name(), Targets: restarted, Detail: "restarted " + names(restarted)}, nil
}

// Pause stops a minority of nodes (or the current leader) with SIGSTOP and
// resumes them on heal. A paused leader wakes up believing it still leads.
type Pause struct {
	Leader bool
	paused []int
}

func (p *Pause) Name() string {
	if p.Leader {
		return "leader-pause"
	}
	return "pause"
}

func (p *Pause) Inject(ctx context.Context, env *Env) (Fault, error) {
	victims := minority(env)
	if p.Leader {
		id := env.Cluster.Leader(ctx)
		if id == 0 {
			return Fault{F: "start-" + p.Name(), Detail: "no leader to pause"}, nil
		}
		victims = []int{id}
	}
	for _, id := range victims {
		if err := env.Cluster.Pause(id); err != nil {
			return Fault{}, err
		}
		p.paused = append(p.paused, id)
	}
	return Fault{F: "start-" + p.Name(), Targets: victims, Detail: "SIGSTOP " + names(victims)}, nil
}

func (p *Pause) Heal(_ context.Context, env *Env) (Fault, error) {
	resumed := p.paused
	p.paused = nil
	for _, id := range resumed {
		if err := env.Cluster.Resume(id); err != nil {
			return Fault{}, err
		}
	}
	return Fault{F: "stop-" + p.Name(), Targets: resumed, Detail: "SIGCONT " + names(resumed)}, nil
}

// minority picks 1 to ⌊(n-1)/2⌋ random live nodes.
func minority(env *Env) []int {
	var live []int
	for _, id := range env.Cluster.IDs() {
		if !env.Cluster.IsDown(id) {
			live = append(live, id)
		}
	}
	env.Rand.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
	most := max(1, (len(env.Cluster.IDs())-1)/2)
	n := min(len(live), 1+env.Rand.Intn(most))
	out := append([]int(nil), live[:n]...)
	sort.Ints(out)
	return out
}

func names(ids []int) string {
	var s []string
	for _, id := range ids {
		s = append(s, fmt.Sprintf("n%d", id))
	}
	return strings.Join(s, " ")
}

// Schedule runs nemeses in cycles: wait, inject one (drawn at random when
// there are several), wait, heal it. It stops when ctx is done, healing
// whatever is active.
type Schedule struct {
	Nemeses  []Nemesis
	Interval time.Duration
	Env      *Env
	// Record receives every injection and heal as it happens.
	Record func(Fault, error)

	mu     sync.Mutex
	active string
}

// Active names the fault in force, or "".
func (s *Schedule) Active() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

// Run blocks until ctx is done, then heals (with its own deadline).
func (s *Schedule) Run(ctx context.Context) {
	if len(s.Nemeses) == 0 {
		<-ctx.Done()
		return
	}
	wait := func() bool {
		d := s.Interval/2 + time.Duration(s.Env.Rand.Int63n(int64(s.Interval)))
		if p, ok := s.Nemeses[0].(Pacer); ok && len(s.Nemeses) == 1 {
			d = p.Gap(s.Interval)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	for wait() {
		n := s.Nemeses[s.Env.Rand.Intn(len(s.Nemeses))]
		f, err := n.Inject(ctx, s.Env)
		if err != nil && ctx.Err() != nil {
			// the run ended mid-fault; the heal below still runs
			f = Fault{F: "start-" + n.Name(), Targets: f.Targets, Detail: "cut short by the end of the run: " + err.Error()}
			err = nil
		}
		s.Record(f, err)
		s.mu.Lock()
		s.active = n.Name()
		if f.Detail != "" && n.Name() != "partition" {
			s.active += " " + names(f.Targets)
		} else if p, ok := n.(*Partition); ok {
			s.active += "(" + p.Shape + ")"
		}
		s.mu.Unlock()
		ok := wait()
		hctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		f, err = n.Heal(hctx, s.Env)
		cancel()
		s.Record(f, err)
		s.mu.Lock()
		s.active = ""
		s.mu.Unlock()
		if !ok {
			return
		}
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
