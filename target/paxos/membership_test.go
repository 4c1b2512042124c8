package paxos

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/target/bugs"
)

var membershipProfile = func() profile {
	p := defaultProfile
	p.member, p.spares = 3, 2
	return p
}()

// TestSimulationWithMembershipChangesKeepsSafetyInvariants mixes random
// adds, removes and replaces (two spare nodes join and leave) with every
// fault kind of the simulation, checks every invariant after every step,
// then heals and requires a command chosen on every member of the newest
// configuration.
func TestSimulationWithMembershipChangesKeepsSafetyInvariants(t *testing.T) {
	seeds := int64(500)
	if testing.Short() {
		seeds = 50
	}
	changes := 0
	for seed := int64(1); seed <= seeds; seed++ {
		p := membershipProfile
		p.nodes = 3 + 2*int(seed%2)
		s := runSchedule(seed, p, bugs.Set{})
		live := s.broken == "" && s.settle()
		if s.broken != "" || !live {
			t.Logf("trace of seed %d:\n%s", seed, s.dump())
			if s.broken == "" {
				s.broken = "liveness: no command was chosen on every member within 5000 fault-free steps after healing"
			}
			t.Fatalf("membership schedule seed %d (%d nodes + %d spares) broke: %s", seed, p.nodes, p.spares, s.broken)
		}
		for _, e := range s.chosen {
			if e.Kind == EntryConfig {
				changes++
			}
		}
	}
	// the schedules must actually change the configuration
	require.Greater(t, changes, int(seeds), "configuration changes chosen over %d schedules", seeds)
	t.Logf("%d schedules, %d configuration changes chosen", seeds, changes)
}

// TestConfigImmediateLetsTwoValuesBeChosenForOneSlot: with the change in
// effect at the next slot instead of α later, a seeded search finds a
// schedule where two values are chosen for one slot; the same schedule on
// the correct build keeps every invariant.
func TestConfigImmediateLetsTwoValuesBeChosenForOneSlot(t *testing.T) {
	p := membershipProfile
	p.member, p.partition, p.heal = 6, 3, 3
	p.nodes = 3
	found := int64(0)
	var broken string
	for seed := int64(1); seed <= 3000 && found == 0; seed++ {
		s := newSim(seed, p.nodes, bugs.Set{ConfigImmediate: true})
		s.addSpares(p.spares)
		for s.step < p.steps && s.broken == "" {
			s.randomStep(p)
		}
		if strings.Contains(s.broken, "agreement") {
			found, broken = seed, s.broken
		}
	}
	require.NotZero(t, found, "no schedule of 3000 exposed config-immediate")
	t.Logf("seed %d: %s", found, broken)
	s := runSchedule(found, p, bugs.Set{})
	require.Empty(t, s.broken, "the correct build broke on seed %d", found)
}

func TestConfigEntryRoundTripsAndRejectsBadInput(t *testing.T) {
	m, err := ParseMembers(ConfigEntry([]NodeID{3, 1, 2}).Data)
	require.NoError(t, err)
	require.Equal(t, []NodeID{1, 2, 3}, m)
	for _, bad := range []string{"", "1,,2", "0", "1,1", "x"} {
		_, err := ParseMembers([]byte(bad))
		require.Error(t, err, bad)
	}
}
