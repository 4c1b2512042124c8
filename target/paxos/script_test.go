package paxos

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/target/bugs"
)

// Scripted schedules: the test decides which links are open, who crashes
// and who campaigns; nodes never tick on their own, so nothing happens that
// the script did not ask for.

// connect leaves open only the links inside each group.
func (s *sim) connect(groups ...[]NodeID) {
	s.cut = map[[2]NodeID]bool{}
	group := map[NodeID]int{}
	for i, g := range groups {
		for _, id := range g {
			group[id] = i + 1
		}
	}
	for _, a := range s.ids {
		for _, b := range s.ids {
			if a != b && (group[a] == 0 || group[a] != group[b]) {
				s.cut[[2]NodeID{a, b}] = true
			}
		}
	}
}

// deliverAll delivers every message in flight, in order, until none is left.
func (s *sim) deliverAll() {
	for i := 0; len(s.net) > 0 && i < 100000; i++ {
		s.step++
		s.deliver(0)
	}
}

// heartbeat makes a leader send one round of heartbeats, delivered.
func (s *sim) heartbeat(id NodeID) {
	for i := 0; i < s.config(id).HeartbeatTicks; i++ {
		s.nodes[id].node.Tick()
		s.drain(id)
	}
	s.deliverAll()
}

// elect campaigns at id until it leads (a first ballot may be refused).
func (s *sim) elect(t *testing.T, id NodeID) Ballot {
	for try := 0; try < 5; try++ {
		s.nodes[id].node.Campaign()
		s.drain(id)
		s.deliverAll()
		if st := s.nodes[id].node.Status(); st.Role == Leader {
			return st.LeaderBallot
		}
	}
	t.Fatalf("n%d could not be elected:\n%s", id, s.dump())
	return Ballot{}
}

// electThenIsolate campaigns at id over the links now open and cuts id off
// the instant it leads: its recovery Accepts reach only itself.
func (s *sim) electThenIsolate(t *testing.T, id NodeID) {
	s.nodes[id].node.Campaign()
	s.drain(id)
	for s.nodes[id].node.Status().Role != Leader {
		require.NotEmpty(t, s.net, "n%d was not elected", id)
		s.deliver(0)
	}
	s.connect([]NodeID{id})
	s.deliverAll()
}

func (s *sim) write(id NodeID, v string) {
	require.NoError(nil, s.nodes[id].node.Propose(Entry{Kind: EntryCommand, Data: []byte(v)}))
	s.drain(id)
	s.deliverAll()
}

func (s *sim) chosenAt(id NodeID, slot uint64) string {
	pv, ok := s.nodes[id].node.ChosenEntry(slot)
	if !ok {
		return ""
	}
	return string(pv.Entry.Data)
}

// figure8 plays the seeds' stages 1-5 on five nodes (PROTOCOL.md, "The
// seeds' schedule"). It returns the sim and the ballot n1 led with in
// stage 3.
func figure8(t *testing.T, b bugs.Set) (*sim, Ballot) {
	s := newSim(8, 5, b)
	s.connect(s.ids)
	s.elect(t, 1)
	s.write(1, "a") // slot 1, on everyone
	s.heartbeat(1)
	// stage 1: X reaches only n1 and n3
	s.connect([]NodeID{1, 3}, []NodeID{2}, []NodeID{4}, []NodeID{5})
	s.write(1, "X")
	pv, ok := s.nodes[3].node.AcceptedEntry(2)
	require.True(t, ok && string(pv.Entry.Data) == "X", "stage 1: n3 holds X in slot 2")
	require.Empty(t, s.chosenAt(1, 2), "stage 1: X is not chosen on a minority")
	// stage 2: n1, n3 down; n2 wins with n4, n5 and writes Y only locally
	s.crash(1)
	s.crash(3)
	s.connect([]NodeID{2, 4, 5})
	s.elect(t, 2)
	s.connect([]NodeID{2}, []NodeID{4}, []NodeID{5})
	s.write(2, "Y")
	pv, ok = s.nodes[2].node.AcceptedEntry(2)
	require.True(t, ok && string(pv.Entry.Data) == "Y", "stage 2: n2 holds Y in slot 2")
	// stage 3: n2 down, n1 and n3 back, n5 cut off; n1 wins with n1, n3, n4
	s.crash(2)
	s.start(1)
	s.start(3)
	s.connect([]NodeID{1, 3, 4}, []NodeID{5})
	b3 := s.elect(t, 1)
	require.Equal(t, "X", s.chosenAt(1, 2), "stage 3: n1 knows X chosen in slot 2")
	// the instant n1 knows it: n1 and n3 die, n4 is cut off before it learns
	require.Empty(t, s.chosenAt(4, 2), "n4 must not learn that slot 2 is chosen")
	s.crash(1)
	s.crash(3)
	s.net = nil
	// stage 5: n2 back with n4 and n5, elected
	s.start(2)
	s.connect([]NodeID{2, 4, 5})
	s.elect(t, 2)
	s.heartbeat(2)
	return s, b3
}

// TestFigure8CommittedValueSurvivesRecovery is the seeds' schedule: with the
// correct recovery, slot 2's acknowledged value X is what the later leader
// chooses; with reconfirm-old-ballot, Y overwrites it.
func TestFigure8CommittedValueSurvivesRecovery(t *testing.T) {
	for _, tc := range []struct {
		name      string
		bugs      bugs.Set
		overwrite bool
	}{
		{"correct", bugs.Set{}, false},
		{"reconfirm-old-ballot", bugs.Set{ReconfirmOldBallot: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := figure8(t, tc.bugs)
			if !tc.overwrite {
				require.Empty(t, s.broken, s.dump())
				for _, id := range []NodeID{2, 4, 5} {
					require.Equal(t, "X", s.chosenAt(id, 2), "n%d", id)
				}
				return
			}
			require.Contains(t, s.broken, "agreement: slot 2 chosen as \"X\"")
			require.Equal(t, "Y", s.chosenAt(2, 2))
			// n1's persisted chosen value disagrees once it restarts
			s.start(1)
			require.Equal(t, "X", s.chosenAt(1, 2))
		})
	}
}

// TestRecoveredEntryCountsOnlyAtNewBallot: in stage 3, the acceptors that
// made X chosen hold it at the new leader's ballot; under the bug they hold
// the original ballot though the leader counted them.
func TestRecoveredEntryCountsOnlyAtNewBallot(t *testing.T) {
	for _, bug := range []bool{false, true} {
		t.Run(fmt.Sprintf("reconfirm-old-ballot=%v", bug), func(t *testing.T) {
			s := newSim(8, 5, bugs.Set{ReconfirmOldBallot: bug})
			s.connect(s.ids)
			b1 := s.elect(t, 1)
			s.write(1, "a")
			s.connect([]NodeID{1, 3}, []NodeID{2}, []NodeID{4}, []NodeID{5})
			s.write(1, "X")
			s.crash(1)
			s.start(1)
			s.connect([]NodeID{1, 3, 4})
			b := s.elect(t, 1)
			require.True(t, b1.Less(b))
			require.Equal(t, "X", s.chosenAt(1, 2))
			for _, id := range []NodeID{1, 3, 4} {
				pv, ok := s.nodes[id].node.AcceptedEntry(2)
				require.True(t, ok)
				if bug {
					require.Equal(t, b1, pv.Ballot, "n%d stores the original ballot", id)
				} else {
					require.Equal(t, b, pv.Ballot, "n%d re-accepted X at the new ballot", id)
				}
			}
		})
	}
}

// TestAcksForAnotherBallotCountForNothing: a leader re-proposing a recovered
// slot ignores Accepted replies that carry its previous ballot (rule 6).
func TestAcksForAnotherBallotCountForNothing(t *testing.T) {
	for _, bug := range []bool{false, true} {
		t.Run(fmt.Sprintf("commit-stale-acks=%v", bug), func(t *testing.T) {
			s := newSim(9, 5, bugs.Set{CommitStaleAcks: bug})
			s.connect(s.ids)
			old := s.elect(t, 1)
			s.connect([]NodeID{1})
			s.write(1, "v") // slot 1 accepted by n1 alone
			// n1 wins again with n4, n5, and is cut off the instant it leads:
			// recovery re-proposes slot 1, accepted by n1 alone.
			s.connect([]NodeID{1, 4, 5})
			s.electThenIsolate(t, 1)
			require.Empty(t, s.chosenAt(1, 1))
			for _, from := range []NodeID{2, 3} {
				s.nodes[1].node.Step(Message{Type: MsgAccepted, From: from, To: 1, Ballot: old, Slot: 1, OK: true})
				s.drain(1)
			}
			if bug {
				require.Equal(t, "v", s.chosenAt(1, 1), "the bug counts acks of the old ballot")
			} else {
				require.Empty(t, s.chosenAt(1, 1), "acks of the old ballot must not choose the slot")
			}
		})
	}
}

// TestLaggingNodeLearnsChosenSlotsItMissed: a node cut off while slots were
// chosen learns them after the heal, through the commit point and CatchUp.
func TestLaggingNodeLearnsChosenSlotsItMissed(t *testing.T) {
	s := newSim(10, 3, bugs.Set{})
	s.connect(s.ids)
	s.elect(t, 1)
	s.connect([]NodeID{1, 2}, []NodeID{3})
	for i := 0; i < 40; i++ {
		s.write(1, fmt.Sprintf("w%d", i))
	}
	require.Zero(t, s.nodes[3].node.Status().CommitPoint)
	s.connect(s.ids)
	for i := 0; i < 10; i++ {
		s.heartbeat(1)
	}
	require.Equal(t, uint64(40), s.nodes[3].node.Status().CommitPoint)
	require.Equal(t, "w39", s.chosenAt(3, 40))
	require.Empty(t, s.broken)
}

// TestStaleAcksNeverChooseAnotherValue: acks that n2 and n4 sent for v1 at
// ballot 1 must not count when n1, leading again at ballot 3, re-proposes a
// different recovered value w in the same slot. Under commit-stale-acks
// they do: w is "chosen" while only n1 and n3 hold it, and a later leader
// with n2, n4, n5 chooses v1 — committed then overwritten.
func TestStaleAcksNeverChooseAnotherValue(t *testing.T) {
	for _, tc := range []struct {
		name string
		bugs bugs.Set
	}{{"correct", bugs.Set{}}, {"commit-stale-acks", bugs.Set{CommitStaleAcks: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(12, 5, tc.bugs)
			s.connect(s.ids)
			s.elect(t, 1)
			// v1 reaches n2 and n4; n1's own acceptance is lost
			s.connect([]NodeID{1, 2, 4})
			require.NoError(t, s.nodes[1].node.Propose(Entry{Kind: EntryCommand, Data: []byte("v1")}))
			s.drain(1)
			kept := s.net[:0]
			for _, m := range s.net {
				if !(m.From == 1 && m.To == 1 && m.Type == MsgAccept) {
					kept = append(kept, m)
				}
			}
			s.net = kept
			s.deliverAll()
			require.Empty(t, s.chosenAt(1, 1))
			// n3 leads at ballot 2 and writes w on itself only
			s.connect([]NodeID{1, 3, 5})
			s.elect(t, 3)
			s.connect([]NodeID{3})
			s.write(3, "w")
			// n1 leads at ballot 3 with n3, n5: recovery takes w; n1 is cut
			// off the instant it leads, so only its own ack arrives
			s.connect([]NodeID{1, 3, 5})
			s.electThenIsolate(t, 1)
			// n1 dies; n2 leads with n4, n5, who hold v1
			s.crash(1)
			s.connect([]NodeID{2, 4, 5})
			s.elect(t, 2)
			s.heartbeat(2)
			require.Equal(t, "v1", s.chosenAt(2, 1))
			if tc.bugs.CommitStaleAcks {
				require.Contains(t, s.broken, `agreement: slot 1 chosen as "w"`)
			} else {
				require.Empty(t, s.broken, s.dump())
			}
		})
	}
}

// TestRejoiningNodeDoesNotDeposeALiveLeader: a node cut off long enough to
// time out many times comes back without having raised its ballot, so the
// leader that kept a majority keeps leading at the same ballot.
func TestRejoiningNodeDoesNotDeposeALiveLeader(t *testing.T) {
	s := newSim(13, 3, bugs.Set{})
	s.connect(s.ids)
	b := s.elect(t, 1)
	s.connect([]NodeID{1, 2}, []NodeID{3})
	round := func() {
		for _, id := range s.ids {
			s.nodes[id].node.Tick()
			s.drain(id)
		}
		s.deliverAll()
	}
	for i := 0; i < 200; i++ { // twenty election timeouts
		round()
	}
	require.Equal(t, b, s.nodes[3].node.Status().Promised, "the cut-off node raised no ballot")
	s.connect(s.ids)
	for i := 0; i < 100; i++ {
		round()
	}
	st := s.nodes[1].node.Status()
	require.Equal(t, Leader, st.Role)
	require.Equal(t, b, st.LeaderBallot)
	require.Equal(t, NodeID(1), s.nodes[3].node.Status().Leader)
	require.Empty(t, s.broken)
}

// TestMajorityElectsANewLeaderSoonAfterTheLeaderIsCutOff: with every node
// ticking in lockstep, the four nodes left elect a leader within a few
// election timeouts — a node whose own timer fired no longer refuses the
// others' pre-votes as if it still heard the old leader.
func TestMajorityElectsANewLeaderSoonAfterTheLeaderIsCutOff(t *testing.T) {
	s := newSim(14, 5, bugs.Set{})
	s.connect(s.ids)
	s.elect(t, 1)
	s.connect([]NodeID{1}, []NodeID{2, 3, 4, 5})
	for round := 1; round <= 60; round++ { // six base election timeouts
		for _, id := range s.ids {
			s.nodes[id].node.Tick()
			s.drain(id)
		}
		s.deliverAll()
		for _, id := range []NodeID{2, 3, 4, 5} {
			if s.nodes[id].node.Status().Role == Leader {
				t.Logf("n%d leads after %d ticks", id, round)
				return
			}
		}
	}
	t.Fatalf("no new leader within 60 ticks of the leader being cut off")
}
