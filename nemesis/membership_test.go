package nemesis

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/nemesis/fault"
	"github.com/paxtest/paxtest/target/api"
	"github.com/paxtest/paxtest/target/quorum"
)

// memberFake is a fakeCluster with spares and an admin API that accepts
// every change.
type memberFake struct {
	*fakeCluster
	members []int
	spares  map[int]bool
	joined  []int
	retired []int
	asked   []api.MembersRequest
	changed func(req api.MembersRequest) // called after each accepted change
	// addedFirst: a spare starts only once added (etcd); refuse: every
	// change is refused with this error
	addedFirst bool
	refuse     string
}

var _ MemberControl = (*memberFake)(nil)

func (m *memberFake) AddedBeforeStart() bool { return m.addedFirst }

// IDs: the nodes in play (spares are not).
func (m *memberFake) IDs() []int {
	var out []int
	for _, id := range m.fakeCluster.IDs() {
		if !m.spares[id] {
			out = append(out, id)
		}
	}
	return out
}

func (m *memberFake) Status(ctx context.Context, id int) (api.Status, error) {
	st, _ := m.fakeCluster.Status(ctx, id)
	for _, x := range m.members {
		st.Members = append(st.Members, uint64(x))
	}
	st.CommitPoint = 100
	return st, nil
}
func (m *memberFake) Spares() []int {
	var out []int
	for id := range m.spares {
		out = append(out, id)
	}
	sort.Ints(out)
	return out
}
func (m *memberFake) Join(_ context.Context, id int) error {
	delete(m.spares, id)
	m.joined = append(m.joined, id)
	return nil
}
func (m *memberFake) Retire(id int) error {
	m.spares[id] = true
	m.retired = append(m.retired, id)
	return nil
}
func (m *memberFake) ChangeMembers(_ context.Context, req api.MembersRequest) (api.MembersResponse, error) {
	m.asked = append(m.asked, req)
	if m.refuse != "" {
		return api.MembersResponse{Error: m.refuse}, nil
	}
	next := []int{}
	for _, x := range m.members {
		if x != int(req.Node) {
			next = append(next, x)
		}
	}
	switch req.Op {
	case api.ChangeAdd:
		next = append(next, int(req.Node))
	case api.ChangeReplace:
		next = append(next, int(req.With))
	}
	sort.Ints(next)
	m.members = next
	if m.changed != nil {
		m.changed(req)
	}
	var ms []uint64
	for _, id := range next {
		ms = append(ms, uint64(id))
	}
	return api.MembersResponse{OK: true, Members: ms, Slot: 90, EffectAt: 95}, nil
}

func TestMembershipKeepsALiveMajorityOfAtLeastThreeAndStartsOrRetiresTheNodes(t *testing.T) {
	for seed := int64(0); seed < 200; seed++ {
		f := newFake(7, 1)
		m := &memberFake{fakeCluster: f, members: []int{1, 2, 3, 4, 5}, spares: map[int]bool{6: true, 7: true}}
		r := rand.New(rand.NewSource(seed))
		f.down[2+r.Intn(4)] = true // one member is down
		x, _ := execFor(f, m)
		x.Rand = r
		for i := 0; i < 4; i++ {
			before := append([]int(nil), m.members...)
			require.NoError(t, (&Membership{}).Start(context.Background(), x))
			live := 0
			for _, id := range m.members {
				if !f.down[id] {
					live++
				}
			}
			require.GreaterOrEqual(t, len(m.members), 3, "seed %d: %v -> %v", seed, before, m.members)
			require.True(t, quorum.Reached(live, len(m.members)), "seed %d: %v -> %v with %d live", seed, before, m.members, live)
			last := m.asked[len(m.asked)-1]
			switch last.Op {
			case api.ChangeAdd:
				require.Equal(t, int(last.Node), m.joined[len(m.joined)-1], "a spare starts before it is added")
			case api.ChangeRemove:
				require.Equal(t, int(last.Node), m.retired[len(m.retired)-1], "a removed node is retired")
			case api.ChangeReplace:
				require.Equal(t, int(last.With), m.joined[len(m.joined)-1])
				require.Equal(t, int(last.Node), m.retired[len(m.retired)-1])
			}
		}
	}
}

func TestOnASystemThatAdmitsOnlyMembersASpareStartsAfterItsAdditionAndOnlyIfItWasAdded(t *testing.T) {
	for _, tc := range []struct {
		name    string
		refuse  string
		started bool
	}{
		{"added", "", true},
		{"refused before it was proposed", api.ErrBadRequest, false},
		{"outcome unknown", api.ErrUnknown, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(4, 1)
			m := &memberFake{fakeCluster: f, members: []int{1, 2, 3}, spares: map[int]bool{4: true}, addedFirst: true, refuse: tc.refuse}
			x, ops := execFor(f, m)
			require.NoError(t, (&Membership{}).Start(context.Background(), x))
			var fs []string
			for _, op := range *ops {
				fs = append(fs, string(op.F))
			}
			require.NotEqual(t, api.ChangeRemove, m.asked[0].Op, "three members: a removal would leave two")
			if tc.started {
				require.Equal(t, []int{4}, m.joined)
				require.GreaterOrEqual(t, len(fs), 2)
				require.Equal(t, []string{string(fault.Members), string(fault.Join)}, fs[:2], "the change, then the start")
			} else {
				require.Empty(t, m.joined, "a spare that was not added is never started")
				require.Empty(t, m.retired, "nor retired: it never left the spares")
			}
		})
	}
}

func TestMembershipSplitStartsASpareReplacesAFollowerAndRetiresIt(t *testing.T) {
	f := newFake(5, 1)
	m := &memberFake{fakeCluster: f, members: []int{1, 2, 3}, spares: map[int]bool{4: true, 5: true}}
	// once the replace is chosen, the member that stays with R takes over
	m.changed = func(req api.MembersRequest) {
		stay := 0
		for _, id := range m.members {
			if id != 1 && id != int(req.With) {
				stay = id
			}
		}
		go func() {
			time.Sleep(20 * time.Millisecond)
			f.setLeader(stay)
		}()
	}
	x, ops := execFor(f, m)
	sd, err := FromScripts("membership-split", "membership-split")
	require.NoError(t, err)
	require.True(t, sd.NeedsSpares())
	require.True(t, sd.BoundClients())
	require.NoError(t, sd.Start(context.Background(), x))
	require.NotContains(t, strings.Join(notes(*ops), ";"), "abandoned")
	require.Len(t, m.asked, 1)
	req := m.asked[0]
	require.Equal(t, api.ChangeReplace, req.Op)
	require.NotEqual(t, uint64(1), req.Node, "the leader is not the one replaced")
	require.Equal(t, []int{int(req.With)}, m.joined, "the spare was started before the change")
	require.Equal(t, []int{int(req.Node)}, m.retired, "the replaced node is retired once out of every configuration")
	require.Empty(t, f.blocked, "the schedule heals before it retires")
	var stages []string
	for _, n := range notes(*ops) {
		stages = append(stages, strings.SplitN(n, ":", 2)[0])
	}
	require.Equal(t, []string{"split", "lead", "heal", "retired", "membership-split"}, stages)
	var chosen []string
	for _, o := range *ops {
		if o.F == fault.Members {
			chosen = append(chosen, o.Describe())
		}
	}
	require.Equal(t, []string{fmt.Sprintf("replace n%d with n%d: configuration %v chosen at slot 90, in effect from slot 95", req.Node, req.With, m.members)}, chosen)
}

func TestRequireMembersAbandonsAnAttemptOnAnotherConfigurationSize(t *testing.T) {
	f := newFake(7, 1)
	m := &memberFake{fakeCluster: f, members: []int{1, 2, 3, 4, 5}, spares: map[int]bool{6: true, 7: true}}
	x, ops := execFor(f, m)
	s, err := ParseScript("t", strings.NewReader("require-members 3\nspare N\n"))
	require.NoError(t, err)
	require.NoError(t, (&Scripted{Label: "t", Scripts: []*Script{s}}).Start(context.Background(), x))
	require.Contains(t, notes(*ops)[1], "line 1 (require-members 3): attempt abandoned: the configuration is [1 2 3 4 5]")
	require.Empty(t, m.joined, "no spare started")
}

func TestMembershipAlternatesSplitsAndRandomChangesOnThreeMembers(t *testing.T) {
	f := newFake(5, 1)
	m := &memberFake{fakeCluster: f, members: []int{1, 2, 3}, spares: map[int]bool{4: true, 5: true}}
	x, ops := execFor(f, m)
	split, err := FromScripts("membership-split", "membership-split")
	require.NoError(t, err)
	nem := &Membership{Split: split}
	require.True(t, nem.BoundClients())
	require.True(t, nem.NeedsSpares(), "the runner starts the cluster with spares for it")
	ctx := context.Background()
	m.changed = func(req api.MembersRequest) {
		if req.Op != api.ChangeReplace || len(m.members) != 3 {
			return
		}
		go func() {
			time.Sleep(20 * time.Millisecond)
			f.setLeader(2 + 3 - int(req.Node)) // the old member that stays
		}()
	}
	// three members and a spare: the first change is a split attempt
	require.NoError(t, nem.Start(ctx, x))
	require.Contains(t, notes(*ops), "split: n1 and n"+itoa(int(m.asked[0].With))+" are cut off from n"+itoa(2+3-int(m.asked[0].Node))+" and n"+itoa(int(m.asked[0].Node))+" the moment the replace of n"+itoa(int(m.asked[0].Node))+" by n"+itoa(int(m.asked[0].With))+" is chosen; n"+itoa(2+3-int(m.asked[0].Node))+" and n"+itoa(int(m.asked[0].Node))+" do not know it is")
	require.NotContains(t, strings.Join(notes(*ops), ";"), "abandoned")
	f.blocked = [][2]int{{1, 2}}
	x.cut = f.blocked
	require.NoError(t, nem.Stop(ctx, x))
	require.Empty(t, f.blocked, "stopping the split opens every link")
	// the next one is a random change, even on three members
	m.changed = nil
	f.setLeader(1)
	m.members, m.spares = []int{1, 2, 3}, map[int]bool{4: true, 5: true}
	*ops = nil
	require.NoError(t, nem.Start(ctx, x))
	require.NotContains(t, strings.Join(notes(*ops), ";"), "split:")
	*ops = nil
	require.NoError(t, nem.Stop(ctx, x))
	require.Empty(t, *ops, "configuration changes stay")
	// the split is tried only on three members, none pending, with a spare
	m.members, m.spares = []int{1, 2, 3, 4, 5}, map[int]bool{6: true}
	require.False(t, nem.canSplit(ctx, x), "five members")
	m.members, m.spares = []int{1, 2, 3}, map[int]bool{}
	require.False(t, nem.canSplit(ctx, x), "no spare")
	m.spares = map[int]bool{4: true}
	require.True(t, nem.canSplit(ctx, x))
}

// diskFake records the power losses it was asked for.
type diskFake struct {
	lost []int
	tore []bool
}

func (d *diskFake) PowerLoss(id int, tear *rand.Rand) (fmt.Stringer, error) {
	d.lost, d.tore = append(d.lost, id), append(d.tore, tear != nil)
	return lossText(fmt.Sprintf("dropped 9 bytes of n%d", id)), nil
}

type lossText string

func (l lossText) String() string { return string(l) }

func TestAPowerLossKillsItsNodesThenDropsWhatTheyDidNotSyncAndLeavesThemDown(t *testing.T) {
	f := newFake(3, 1)
	x, _ := execFor(f, nil)
	_, err := x.Perform(context.Background(), fault.Op{F: fault.PowerLoss, Nodes: []int{1, 2}})
	require.ErrorContains(t, err, "--disk lazy", "without the lazy disk it says what it needs")

	d := &diskFake{}
	x.Disk = d
	op, err := x.Perform(context.Background(), fault.Op{F: fault.PowerLoss, Nodes: []int{1, 2}, Tear: true})
	require.NoError(t, err)
	require.True(t, f.down[1] && f.down[2], "both killed, and left down until a restart")
	require.Equal(t, []int{1, 2}, d.lost)
	require.Equal(t, []bool{true, true}, d.tore)
	require.Equal(t, "n1 dropped 9 bytes of n1; n2 dropped 9 bytes of n2", op.Note)
}

func TestDataIsDamagedOnlyWhileItsNodeIsDownAndANodeThatThenRefusesStaysDown(t *testing.T) {
	f := newFake(3, 1)
	x, _ := execFor(f, nil)
	d := &damager{}
	x.Data = d
	op := fault.Op{F: fault.Corrupt, Node: 2, Damage: &fault.Damage{Kind: fault.BitFlip, Offset: -1}}
	_, err := x.Perform(context.Background(), op)
	require.ErrorContains(t, err, "kill it first", "a running node's data is never touched")
	require.Empty(t, d.asked)

	f.down[2] = true
	got, err := x.Perform(context.Background(), op)
	require.NoError(t, err)
	require.Equal(t, "drawn.log", got.Damage.File, "what was drawn is recorded")
	require.Equal(t, "n2's drawn.log: bit 0 of byte -1 flipped", got.Describe())

	f.failRestart = map[int]bool{2: true}
	got, err = x.Perform(context.Background(), fault.Op{F: fault.Restart, Nodes: []int{2}})
	require.NoError(t, err, "refusing damaged data is the node's right answer, not the run's failure")
	require.Equal(t, []int{2}, got.Stopped)
	require.Contains(t, got.Note, "n2 stopped rather than serve its damaged data: corrupt record at offset 75")
	require.NoError(t, x.HealAll(context.Background(), "heal", 0))
	require.True(t, f.down[2], "a heal leaves it down")

	_, err = x.Perform(context.Background(), fault.Op{F: fault.Restart, Nodes: []int{3}})
	require.NoError(t, err)
	f.down[3] = true
	f.failRestart[3] = true
	got, err = x.Perform(context.Background(), fault.Op{F: fault.Restart, Nodes: []int{3}})
	require.NoError(t, err, "a node that does not start on undamaged data is the run's finding, not the nemesis's failure")
	require.Equal(t, []int{3}, got.NotStarted)
	require.Contains(t, got.Note, "n3 did not start again: corrupt record at offset 75")
	require.True(t, f.down[3], "it stays down")

	_, err = x.Perform(context.Background(), fault.Op{F: fault.Repair, Node: 3})
	require.ErrorContains(t, err, "nothing to take back", "only damage a node refused is taken back")
	_, err = x.Perform(context.Background(), fault.Op{F: fault.Repair, Node: 2})
	require.NoError(t, err)
	require.Equal(t, []int{2}, d.repaired)
	delete(f.failRestart, 2)
	delete(f.failRestart, 3)
	require.NoError(t, x.HealAll(context.Background(), "heal", 0))
	require.False(t, f.down[2], "repaired, a heal starts it again")
}
