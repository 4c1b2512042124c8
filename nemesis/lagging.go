package nemesis

import (
	"context"
	"fmt"
	"time"

	"github.com/paxtest/paxtest/nemesis/fault"
)

// ElectLagging makes a lagging node the leader: one follower X is cut off
// while the others keep deciding, then the leader is killed and the
// survivors are arranged in a star around X (each can reach X, none can
// reach another), so only X can gather a majority. X's recovery then spans
// every slot it missed: correct promises carry those chosen values, and X
// re-proposes them; with prepare-omits-committed they are hidden, and X
// fills chosen slots with other commands.
type ElectLagging struct{ turn int }

// Name is the --nemesis value.
func (*ElectLagging) Name() string { return "elect-lagging" }

// MinNodes: a leader, a node left behind, and others to elect it.
func (*ElectLagging) MinNodes() int { return 3 }

// Exclusive: it needs the cluster to itself.
func (*ElectLagging) Exclusive() bool { return true }

// Start runs one attempt.
func (e *ElectLagging) Start(ctx context.Context, x *Exec) error {
	e.turn++
	op := func(o fault.Op) fault.Op { o.Source, o.Attempt = e.Name(), e.turn; return o }
	c := x.Cluster
	ids := c.IDs()
	leader := c.Leader(ctx)
	if leader == 0 || len(ids) < 3 {
		x.Note(e.Name(), e.turn, "no leader: attempt skipped")
		return nil
	}
	others := without(ids, leader)
	x.Rand.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	lag := others[0]
	if _, err := x.Perform(ctx, op(fault.Op{F: fault.Partition, Links: isolate(lag, ids)})); err != nil {
		return err
	}
	x.Note(e.Name(), e.turn, fmt.Sprintf("n%d cut off to fall behind", lag))
	sleep(ctx, 2*time.Second)
	behind := ""
	if lst, err := c.Status(ctx, leader); err == nil {
		if xst, err := c.Status(ctx, lag); err == nil {
			behind = fmt.Sprintf("n%d %d slots behind", lag, int64(lst.CommitPoint)-int64(xst.CommitPoint))
		}
	}
	if _, err := x.Perform(ctx, op(fault.Op{F: fault.Kill, Nodes: []int{leader}})); err != nil {
		return err
	}
	survivors := without(ids, leader)
	var star [][2]int
	for _, a := range survivors {
		for _, b := range survivors {
			if a != b && a != lag && b != lag {
				star = append(star, [2]int{a, b})
			}
		}
	}
	if _, err := x.Perform(ctx, op(fault.Op{F: fault.Partition, Links: star})); err != nil {
		return err
	}
	x.Note(e.Name(), e.turn, fmt.Sprintf("leader n%d killed; %s; the others reach only n%d", leader, behind, lag))
	if _, err := x.Perform(ctx, op(fault.Op{F: fault.AwaitLeader, Nodes: survivors})); err != nil && !isAbandon(err) {
		return err
	}
	sleep(ctx, 500*time.Millisecond)
	return nil
}

// Stop restarts the killed leader and opens every link.
func (e *ElectLagging) Stop(ctx context.Context, x *Exec) error {
	return x.HealAll(ctx, e.Name(), e.turn)
}
