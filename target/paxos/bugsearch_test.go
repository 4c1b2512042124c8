package paxos

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/target/bugs"
)

// For each bug switch that random schedules find (reconfirm-old-ballot and
// commit-stale-acks need precise schedules: see script_test.go): search seeded schedules of a fault profile that suits
// it until one breaks an invariant with the switch on, then run that same
// seed with the switch off and require that every invariant holds. The
// symptom must be the one the switch is documented to cause.
func TestEveryBugSwitchBreaksAnInvariantThatTheCorrectBuildKeeps(t *testing.T) {
	heavy := defaultProfile
	heavy.crash, heavy.restart, heavy.partition, heavy.heal = 4, 6, 3, 3
	for _, tc := range []struct {
		name    string
		bugs    bugs.Set
		p       profile
		nodes   int
		symptom string
	}{
		{"no-fsync", bugs.Set{NoFsync: true}, withFlush(heavy, 40), 3, "agreement"},
		{"volatile-promise", bugs.Set{VolatilePromise: true}, heavy, 3, "agreement"},
		{"prepare-omits-committed", bugs.Set{PrepareOmitsCommitted: true}, heavy, 5, "agreement"},
		{"stale-read", bugs.Set{StaleRead: true}, withReads(heavy, 15), 5, "linearizable read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			p.nodes = tc.nodes
			found := int64(0)
			var broken string
			for seed := int64(1); seed <= 3000 && found == 0; seed++ {
				s := newSim(seed, p.nodes, tc.bugs)
				s.skipPromiseCheck = true
				for s.step < p.steps && s.broken == "" {
					s.randomStep(p)
				}
				if strings.Contains(s.broken, tc.symptom) {
					found, broken = seed, s.broken
				}
			}
			require.NotZero(t, found, "no schedule of 3000 exposed %s", tc.name)
			t.Logf("seed %d: %s", found, broken)
			s := runSchedule(found, p, bugs.Set{})
			require.Empty(t, s.broken, "the correct build broke on seed %d", found)
		})
	}
}

// TestVolatilePromiseForgetsThePromiseOnRestart: the switch is visible as a
// promise that decreases across a restart; the correct build never does.
func TestVolatilePromiseForgetsThePromiseOnRestart(t *testing.T) {
	for _, bug := range []bool{false, true} {
		s := newSim(11, 3, bugs.Set{VolatilePromise: bug})
		s.connect(s.ids)
		s.elect(t, 1)
		s.crash(2)
		s.start(2)
		if bug {
			require.Contains(t, s.broken, "promise monotonic")
		} else {
			require.Empty(t, s.broken)
		}
	}
}

func withFlush(p profile, every int) profile { p.flushEvery = every; return p }
func withReads(p profile, w int) profile     { p.read = w; return p }
