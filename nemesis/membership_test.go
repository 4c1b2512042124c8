package nemesis

import (
	"context"
	"math/rand"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

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
	return api.MembersResponse{OK: true, Slot: 90, EffectAt: 95}, nil
}

func TestMembershipKeepsALiveMajorityOfAtLeastThreeAndStartsOrRetiresTheNodes(t *testing.T) {
	for seed := int64(0); seed < 200; seed++ {
		f := newFake(7, 1)
		m := &memberFake{fakeCluster: f, members: []int{1, 2, 3, 4, 5}, spares: map[int]bool{6: true, 7: true}}
		r := rand.New(rand.NewSource(seed))
		f.down[2+r.Intn(4)] = true // one member is down
		env := &Env{Cluster: m, Net: f, Rand: r}
		for i := 0; i < 4; i++ {
			before := append([]int(nil), m.members...)
			fault, err := (&Membership{}).Inject(context.Background(), env)
			require.NoError(t, err)
			require.Equal(t, "start-membership", fault.F)
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
