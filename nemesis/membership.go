package nemesis

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/paxtest/paxtest/target/api"
	"github.com/paxtest/paxtest/target/quorum"
)

// MemberControl is what the membership nemesis needs of the cluster beyond
// Control; harness.Cluster implements it.
type MemberControl interface {
	Spares() []int // nodes out of play, which Join can start
	Join(ctx context.Context, id int) error
	Retire(id int) error
	ChangeMembers(ctx context.Context, req api.MembersRequest) (api.MembersResponse, error)
}

// Membership changes the configuration through the leader's admin API: it
// adds a spare (started first, so it can learn the log), removes a member
// (retired once the removal is in effect), or replaces one with a spare.
// It keeps at least three members, and never makes a change after which
// the live members of the new configuration would not be a majority of it.
// The changes stay: healing changes nothing.
//
// With Split set, a change on a three-member configuration that does not
// follow a split is an attempt of that schedule (membership-split.pax: a
// replace chosen just as the configuration splits between the leader with
// the new node and the two old members that did not hear it is chosen),
// whose heal opens every link.
type Membership struct {
	Split *Scripted
	split bool // the last injection was a Split attempt
}

// Name is the --nemesis value.
func (*Membership) Name() string { return "membership" }

// NeedsSpares: every change but a removal starts a spare.
func (*Membership) NeedsSpares() bool { return true }

// BoundClients: the split needs clients that keep asking their own node.
func (m *Membership) BoundClients() bool { return m.Split != nil && m.Split.BoundClients() }

// Inject makes one change.
func (m *Membership) Inject(ctx context.Context, env *Env) (Fault, error) {
	m.split = m.Split != nil && !m.split && m.canSplit(ctx, env)
	if m.split {
		f, err := m.Split.Inject(ctx, env)
		f.F, f.Detail = "start-membership", "split: "+f.Detail
		return f, err
	}
	return m.change(ctx, env)
}

// canSplit: three members, none pending, a spare to start.
func (m *Membership) canSplit(ctx context.Context, env *Env) bool {
	mc, ok := env.Cluster.(MemberControl)
	if !ok || len(mc.Spares()) == 0 {
		return false
	}
	l := env.Cluster.Leader(ctx)
	if l == 0 {
		return false
	}
	st, err := env.Cluster.Status(ctx, l)
	return err == nil && len(st.Members) == 3 && len(st.Pending) == 0
}

// change makes one random change.
func (m *Membership) change(ctx context.Context, env *Env) (Fault, error) {
	skip := func(why string) (Fault, error) { return Fault{F: "start-membership", Detail: "no change: " + why}, nil }
	mc, ok := env.Cluster.(MemberControl)
	if !ok {
		return skip("this cluster has no spare nodes")
	}
	leader := env.Cluster.Leader(ctx)
	if leader == 0 {
		return skip("no leader")
	}
	st, err := env.Cluster.Status(ctx, leader)
	if err != nil {
		return skip(err.Error())
	}
	if len(st.Pending) > 0 {
		return skip(fmt.Sprintf("the change to %v is not in effect yet", st.Pending))
	}
	members := toInts(st.Members)
	spares := mc.Spares()
	live := func(ids []int) int {
		k := 0
		for _, id := range ids {
			if !env.Cluster.IsDown(id) {
				k++
			}
		}
		return k
	}
	// a change is allowed when the new configuration keeps a live majority
	allowed := func(next []int) bool {
		return len(next) >= 3 && quorum.Reached(live(next), len(next))
	}
	var choices []api.MembersRequest
	for _, s := range spares {
		if allowed(append(append([]int(nil), members...), s)) {
			choices = append(choices, api.MembersRequest{Op: api.ChangeAdd, Node: uint64(s)})
		}
		for _, x := range members {
			if allowed(append(without(members, x), s)) {
				choices = append(choices, api.MembersRequest{Op: api.ChangeReplace, Node: uint64(x), With: uint64(s)})
			}
		}
	}
	for _, x := range members {
		if allowed(without(members, x)) {
			choices = append(choices, api.MembersRequest{Op: api.ChangeRemove, Node: uint64(x)})
		}
	}
	if len(choices) == 0 {
		return skip(fmt.Sprintf("no change to %v keeps a live majority of at least three", members))
	}
	req := choices[env.Rand.Intn(len(choices))]
	joining := int(req.Node)
	if req.Op == api.ChangeReplace {
		joining = int(req.With)
	}
	if req.Op != api.ChangeRemove {
		if err := mc.Join(ctx, joining); err != nil {
			return Fault{}, fmt.Errorf("membership: start n%d: %w", joining, err)
		}
	}
	res, err := mc.ChangeMembers(ctx, req)
	if err != nil {
		return Fault{}, fmt.Errorf("membership: %w", err)
	}
	what := describeChange(req)
	targets := []int{int(req.Node)}
	if req.With != 0 {
		targets = append(targets, int(req.With))
	}
	sort.Ints(targets)
	if !res.OK {
		if req.Op != api.ChangeRemove && res.Error != api.ErrUnknown {
			// definitely not added: out of play again
			if err := mc.Retire(joining); err != nil {
				return Fault{}, err
			}
		}
		return Fault{F: "start-membership", Targets: targets, Detail: fmt.Sprintf("%s refused (%s %s)", what, res.Error, res.Detail)}, nil
	}
	detail := fmt.Sprintf("%s: configuration %v chosen at slot %d, in effect from slot %d", what, res.Members, res.Slot, res.EffectAt)
	if req.Op != api.ChangeAdd {
		// the removed node leaves play once no slot it decides is left
		gone := int(req.Node)
		if inEffect(ctx, env, res.EffectAt) {
			if err := mc.Retire(gone); err != nil {
				return Fault{}, err
			}
			detail += fmt.Sprintf("; n%d retired", gone)
		} else {
			detail += fmt.Sprintf("; not in effect within 5 s, n%d kept running", gone)
		}
	}
	return Fault{F: "start-membership", Targets: targets, Detail: detail}, nil
}

// inEffect waits until some node's commit point reaches the slot before
// effect.
func inEffect(ctx context.Context, env *Env, effect uint64) bool {
	return pollUntil(ctx, 5*time.Second, 20*time.Millisecond, func() bool {
		l := env.Cluster.Leader(ctx)
		if l == 0 {
			return false
		}
		st, err := env.Cluster.Status(ctx, l)
		return err == nil && st.CommitPoint+1 >= effect
	})
}

// Heal changes nothing: configuration changes stay. After a split it
// opens every link and restarts every node, as the schedule's heal does.
func (m *Membership) Heal(ctx context.Context, env *Env) (Fault, error) {
	if m.split {
		f, err := m.Split.Heal(ctx, env)
		f.F = "stop-membership"
		return f, err
	}
	return Fault{F: "stop-membership", Detail: "configuration changes stay"}, nil
}

func describeChange(r api.MembersRequest) string {
	switch r.Op {
	case api.ChangeAdd:
		return fmt.Sprintf("add n%d", r.Node)
	case api.ChangeRemove:
		return fmt.Sprintf("remove n%d", r.Node)
	default:
		return fmt.Sprintf("replace n%d with n%d", r.Node, r.With)
	}
}

func toInts(ids []uint64) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}
