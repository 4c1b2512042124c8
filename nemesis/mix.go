package nemesis

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

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
	// Served is when the cluster last acknowledged an operation (the run
	// clock's time, as X.Now; nil: the mix is not paced). The next fault
	// waits until the cluster has acknowledged one since the last heal,
	// for at most Pace; past it the fault starts anyway and a note says
	// so.
	Served func() int64
	Pace   time.Duration

	mu     sync.Mutex
	noted  int64 // the heal whose missing acknowledgement a note reported
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
		if !s.paced() {
			next = time.Now().Add(pacePoll)
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

// pacePoll is how often a paced mix looks for the acknowledgement it
// waits for.
const pacePoll = 20 * time.Millisecond

// paced reports whether the next fault may start: the cluster has
// acknowledged an operation since the last heal, or Pace has passed since
// it (then a note says the fault starts anyway).
func (s *Schedule) paced() bool {
	if s.Served == nil {
		return true
	}
	lift := s.X.LastLift()
	if lift == 0 || s.Served() > lift {
		return true
	}
	if time.Duration(s.X.Now()-lift) < s.Pace {
		return false
	}
	if s.noted != lift {
		s.noted = lift
		s.X.Note("mix", 0, fmt.Sprintf("no acknowledgement within %v of the heal at %.1f s: the next fault starts anyway", s.Pace, float64(lift)/1e9))
	}
	return true
}

// DefaultScenarioShare is the part of the default mix's draws that run a
// scenario: half, so that each scenario of the rotation comes round in a
// one-minute run, and the other half overlapping faults of every kind.
const DefaultScenarioShare = 0.5

// settle waits, briefly, until some node leads and, when paced, until
// the cluster serves again after the heal before it.
func (s *Schedule) settle(ctx context.Context) {
	pollUntil(ctx, s.Interval/2, 20*time.Millisecond, func() bool { return s.X.Cluster.Leader(ctx) != 0 })
	pollUntil(ctx, s.Pace, pacePoll, s.paced)
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
