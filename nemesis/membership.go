package nemesis

import (
	"context"
	"fmt"
	"time"

	"github.com/paxtest/paxtest/nemesis/fault"
	"github.com/paxtest/paxtest/target/api"
	"github.com/paxtest/paxtest/target/quorum"
)

// Membership changes the configuration through the leader's admin API: it
// adds a spare (started first, so it can learn the log; or just after the
// addition, on a system that admits only a member: AddedBeforeStart),
// removes a member
// (retired once the removal is in effect), or replaces one with a spare.
// It keeps at least three members, and never makes a change after which
// the live members of the new configuration would not be a majority of it.
// The changes stay: stopping it changes nothing.
//
// With Split set, a change on a three-member configuration that does not
// follow a split is an attempt of that schedule (membership-split.pax: a
// replace chosen just as the configuration splits between the leader with
// the new node and the two old members that did not hear it is chosen),
// whose Stop lifts every fault.
type Membership struct {
	Split *Scripted
	split bool // the last start was a Split attempt
	turn  int
}

// Name is the --nemesis value.
func (*Membership) Name() string { return "membership" }

// MinNodes: it keeps at least three members.
func (*Membership) MinNodes() int { return 3 }

// NeedsSpares: every change but a removal starts a spare.
func (*Membership) NeedsSpares() bool { return true }

// BoundClients: the split needs clients that keep asking their own node.
func (m *Membership) BoundClients() bool { return m.Split != nil && m.Split.BoundClients() }

// Start makes one change.
func (m *Membership) Start(ctx context.Context, x *Exec) error {
	m.turn++
	m.split = m.Split != nil && !m.split && m.canSplit(ctx, x)
	if m.split {
		return m.Split.Start(ctx, x)
	}
	return m.change(ctx, x)
}

// canSplit: three members, none pending, a spare that may start first.
func (m *Membership) canSplit(ctx context.Context, x *Exec) bool {
	if x.Members == nil || len(x.Members.Spares()) == 0 || x.Members.AddedBeforeStart() {
		return false // the split starts its spare before the replace
	}
	l := x.Cluster.Leader(ctx)
	if l == 0 {
		return false
	}
	st, err := x.Cluster.Status(ctx, l)
	return err == nil && len(st.Members) == 3 && len(st.Pending) == 0
}

// change makes one random change.
func (m *Membership) change(ctx context.Context, x *Exec) error {
	skip := func(why string) error {
		x.Note(m.Name(), m.turn, "no change: "+why)
		return nil
	}
	op := func(o fault.Op) fault.Op { o.Source, o.Attempt = m.Name(), m.turn; return o }
	mc := x.Members
	if mc == nil {
		return skip("this cluster has no spare nodes")
	}
	leader := x.Cluster.Leader(ctx)
	if leader == 0 {
		return skip("no leader")
	}
	st, err := x.Cluster.Status(ctx, leader)
	if err != nil {
		return skip(err.Error())
	}
	if len(st.Pending) > 0 {
		return skip(fmt.Sprintf("the change to %v is not in effect yet", st.Pending))
	}
	members := toInts(st.Members)
	choices := changesKeepingAMajority(x, members, mc.Spares())
	if len(choices) == 0 {
		return skip(fmt.Sprintf("no change to %v keeps a live majority of at least three", members))
	}
	ch := choices[x.Rand.Intn(len(choices))]
	joining := ch.Node
	if ch.Op == api.ChangeReplace {
		joining = ch.With
	}
	join := func() error {
		if _, err := x.Perform(ctx, op(fault.Op{F: fault.Join, Node: joining})); err != nil {
			return fmt.Errorf("membership: start n%d: %w", joining, err)
		}
		return nil
	}
	// a spare starts first, to learn the log, unless the system admits
	// only a member it already added
	first := ch.Op != api.ChangeRemove && !mc.AddedBeforeStart()
	if first {
		if err := join(); err != nil {
			return err
		}
	}
	done, err := x.Perform(ctx, op(fault.Op{F: fault.Members, Change: &ch}))
	if err != nil {
		return fmt.Errorf("membership: %w", err)
	}
	res := done.Change
	if !res.OK {
		if first && res.Error != api.ErrUnknown {
			// definitely not added: out of play again
			_, err := x.Perform(ctx, op(fault.Op{F: fault.Retire, Node: joining}))
			return err
		}
		// not started, or perhaps added: a spare that may be a member
		// but never started is a member down, which the next change's
		// majority counts
		return nil
	}
	if ch.Op != api.ChangeRemove && !first {
		if err := join(); err != nil {
			return err
		}
	}
	if ch.Op != api.ChangeAdd {
		// the removed node leaves play once no slot it decides is left
		if !inEffect(ctx, x, res.Effect) {
			x.Note(m.Name(), m.turn, fmt.Sprintf("not in effect within 5 s, n%d kept running", ch.Node))
			return nil
		}
		_, err := x.Perform(ctx, op(fault.Op{F: fault.Retire, Node: ch.Node}))
		return err
	}
	return nil
}

// changesKeepingAMajority lists every add, replace and remove whose new
// configuration has at least three members and a live majority.
func changesKeepingAMajority(x *Exec, members, spares []int) []fault.Change {
	live := func(ids []int) int {
		k := 0
		for _, id := range ids {
			if !x.Cluster.IsDown(id) {
				k++
			}
		}
		return k
	}
	allowed := func(next []int) bool {
		return len(next) >= 3 && quorum.Reached(live(next), len(next))
	}
	var choices []fault.Change
	for _, s := range spares {
		if contains(members, s) {
			continue // added but never started (its addition's outcome was unknown)
		}
		if allowed(append(append([]int(nil), members...), s)) {
			choices = append(choices, fault.Change{Op: api.ChangeAdd, Node: s})
		}
		for _, id := range members {
			if allowed(append(without(members, id), s)) {
				choices = append(choices, fault.Change{Op: api.ChangeReplace, Node: id, With: s})
			}
		}
	}
	for _, id := range members {
		if allowed(without(members, id)) {
			choices = append(choices, fault.Change{Op: api.ChangeRemove, Node: id})
		}
	}
	return choices
}

// inEffect waits until the leader's commit point reaches the slot before
// effect.
func inEffect(ctx context.Context, x *Exec, effect uint64) bool {
	return pollUntil(ctx, 5*time.Second, 20*time.Millisecond, func() bool {
		l := x.Cluster.Leader(ctx)
		if l == 0 {
			return false
		}
		st, err := x.Cluster.Status(ctx, l)
		return err == nil && st.CommitPoint+1 >= effect
	})
}

// Stop changes nothing: configuration changes stay. After a split it lifts
// every fault, as the schedule's Stop does.
func (m *Membership) Stop(ctx context.Context, x *Exec) error {
	if m.split {
		return m.Split.Stop(ctx, x)
	}
	return nil
}
