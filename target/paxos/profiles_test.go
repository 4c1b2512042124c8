package paxos

import (
	"encoding/json"
	"flag"
	"os"
	"testing"

	"github.com/paxtest/paxtest/target/bugs"
)

// The fault profiles below are the simulation's whole repertoire, each
// weighted toward one class of bug: message faults, crashes (durability),
// reads (linearizable reads) and membership changes. `paxtest bench
// mutants` runs this test on every mutant of the core with a larger budget
// and -sim.report, and calls a mutant unsafe when it breaks a safety
// invariant of PROTOCOL.md.

var (
	simBudget = flag.Int("sim.budget", 0, "schedules per profile in TestSimulationProfilesKeepEverySafetyInvariant (0: 40, 10 with -short)")
	simReport = flag.String("sim.report", "", "write the first broken invariant of TestSimulationProfilesKeepEverySafetyInvariant to this JSON file")
)

// simProfiles names the profiles, in the order they are run.
func simProfiles() []struct {
	name string
	p    profile
} {
	heavy := defaultProfile
	heavy.crash, heavy.restart, heavy.partition, heavy.heal = 4, 6, 3, 3
	reads := heavy
	reads.read = 15
	return []struct {
		name string
		p    profile
	}{
		{"default", defaultProfile},
		{"crashes", heavy},
		{"reads", reads},
		{"membership", membershipProfile},
	}
}

// SimVerdict is what -sim.report writes: the first safety invariant
// broken (empty when every schedule kept them), or a liveness failure
// after healing.
type SimVerdict struct {
	Invariant string `json:"invariant"` // agreement, prefix, promise monotonic, linearizable read, liveness; "" if none
	Profile   string `json:"profile,omitempty"`
	Seed      int64  `json:"seed,omitempty"`
	Nodes     int    `json:"nodes,omitempty"`
	Detail    string `json:"detail,omitempty"`
	Schedules int    `json:"schedules"`
}

// TestSimulationProfilesKeepEverySafetyInvariant runs every profile on 3
// and 5 nodes and requires that no safety invariant breaks (agreement,
// prefix order, monotonic promises, linearizable reads) and that the
// cluster decides again after healing. Safety is checked over every
// profile before liveness is judged, so a mutant that breaks both is
// reported unsafe.
func TestSimulationProfilesKeepEverySafetyInvariant(t *testing.T) {
	budget := *simBudget
	if budget <= 0 {
		budget = 40
		if testing.Short() {
			budget = 10
		}
	}
	v := SimVerdict{}
	var stuck *SimVerdict
	for _, pr := range simProfiles() {
		for i := 0; i < budget && v.Invariant == ""; i++ {
			seed := int64(1 + i)
			p := pr.p
			p.nodes = 3 + 2*(i%2)
			s := newSim(seed, p.nodes, bugs.Set{})
			s.addSpares(p.spares)
			for s.step < p.steps && s.broken == "" {
				s.randomStep(p)
			}
			v.Schedules++
			// once the cluster failed to recover, liveness is decided: the
			// remaining schedules only look for a broken safety invariant
			live := s.broken == "" && (stuck != nil || s.settle())
			switch {
			case s.broken != "":
				v = SimVerdict{Invariant: string(s.invariant), Profile: pr.name, Seed: seed, Nodes: p.nodes, Detail: s.broken, Schedules: v.Schedules}
				t.Logf("trace of %s seed %d:\n%s", pr.name, seed, s.dump())
			case !live && stuck == nil:
				stuck = &SimVerdict{Invariant: string(invLiveness), Profile: pr.name, Seed: seed, Nodes: p.nodes,
					Detail: "no command was chosen everywhere within 5000 fault-free steps after healing"}
			}
		}
	}
	if v.Invariant == "" && stuck != nil {
		stuck.Schedules = v.Schedules
		v = *stuck
	}
	if *simReport != "" {
		b, err := json.Marshal(v)
		if err == nil {
			err = os.WriteFile(*simReport, b, 0o644)
		}
		if err != nil {
			t.Fatalf("write -sim.report: %v", err)
		}
	}
	if v.Invariant != "" {
		t.Fatalf("%s profile, seed %d (%d nodes): %s", v.Profile, v.Seed, v.Nodes, v.Detail)
	}
	t.Logf("%d schedules over %d profiles kept every safety invariant", v.Schedules, len(simProfiles()))
}
