package nemesis

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/paxtest/paxtest/nemesis/fault"
	"github.com/paxtest/paxtest/target/api"
)

// pollUntil calls done every `every` until it reports true (and so does
// pollUntil), or until within has passed or ctx has ended (false).
func pollUntil(ctx context.Context, within, every time.Duration, done func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if done() {
			return true
		}
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			return false
		}
		sleep(ctx, every)
	}
}

func isAbandon(err error) bool { return errors.Is(err, ErrAbandon) }

// cutBetween blocks every link between the two groups, both ways.
func cutBetween(x, y []int) [][2]int {
	var out [][2]int
	for _, a := range x {
		for _, b := range y {
			out = append(out, [2]int{a, b}, [2]int{b, a})
		}
	}
	return out
}

// isolate blocks every link to and from id.
func isolate(id int, ids []int) [][2]int { return cutBetween([]int{id}, without(ids, id)) }

func without(ids []int, x int) []int {
	var out []int
	for _, id := range ids {
		if id != x {
			out = append(out, id)
		}
	}
	return out
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// awaitCaughtUp waits until every node of op.Nodes has reached the
// commit point the furthest of them had when the wait began (left in
// op.Slot). A scenario starts from there when it needs every node able to
// propose into the same slots: a leader proposes only up to α slots past
// its own commit point.
func (x *Exec) awaitCaughtUp(ctx context.Context, op *fault.Op) error {
	op.Slot = 0
	for _, id := range op.Nodes {
		st, err := x.Cluster.Status(ctx, id)
		if err != nil {
			return abandon("n%d's status is unreadable: %v", id, err)
		}
		op.Slot = max(op.Slot, st.CommitPoint)
	}
	behind := ""
	if !pollUntil(ctx, x.within(op, 3*time.Second), 5*time.Millisecond, func() bool {
		for _, id := range op.Nodes {
			st, err := x.Cluster.Status(ctx, id)
			switch {
			case err != nil:
				behind = fmt.Sprintf("n%d's status is unreadable (%v)", id, err)
			case st.CommitPoint < op.Slot:
				behind = fmt.Sprintf("n%d's commit point (%d) did not reach slot %d", id, st.CommitPoint, op.Slot)
			default:
				continue
			}
			return false
		}
		return true
	}) {
		return abandon("%s", behind)
	}
	return nil
}

// awaitNewAccepted waits until op.Node accepts an entry it did not hold
// when the wait began, in a slot it has not seen chosen, and leaves in
// op.Slot the slot before the first such one. What it held before is
// passed over: it was sent before the steps that came just before the
// wait (a cut), and may have reached, and been chosen on, the other side.
func (x *Exec) awaitNewAccepted(ctx context.Context, op *fault.Op) error {
	st, err := x.Cluster.Status(ctx, op.Node)
	if err != nil {
		return abandon("n%d's status is unreadable: %v", op.Node, err)
	}
	held := max(st.CommitPoint, st.MaxSlot)
	if !pollUntil(ctx, x.within(op, 3*time.Second), 5*time.Millisecond, func() bool {
		st, err = x.Cluster.Status(ctx, op.Node)
		return err == nil && (st.MaxSlot > held || st.CommitPoint > held)
	}) {
		return abandon("n%d accepted no new entry after slot %d", op.Node, held)
	}
	if st.CommitPoint > held {
		return abandon("n%d already saw its new slot %d chosen", op.Node, held+1)
	}
	op.Slot = held
	return nil
}

// awaitAcceptedIn waits until op.Node holds an entry in slot op.Slot that
// it has not seen chosen, and leaves in op.Slot the slot before it, as the
// plain await-accepted does. A node that saw the slot chosen abandons the
// attempt: what it holds there can no longer differ from what was chosen.
func (x *Exec) awaitAcceptedIn(ctx context.Context, op *fault.Op) error {
	target := op.Slot
	var st api.Status
	chosen := false
	if !pollUntil(ctx, x.within(op, 3*time.Second), 5*time.Millisecond, func() bool {
		var err error
		st, err = x.Cluster.Status(ctx, op.Node)
		chosen = err == nil && st.CommitPoint >= target
		return chosen || err == nil && st.MaxSlot >= target
	}) {
		return abandon("n%d accepted nothing in slot %d (its entries end at slot %d)", op.Node, target, st.MaxSlot)
	}
	if chosen {
		return abandon("n%d already saw slot %d chosen", op.Node, target)
	}
	op.Slot = target - 1
	return nil
}
