package nemesis

import (
	"context"
	"fmt"
	"time"

	"github.com/paxtest/paxtest/nemesis/fault"
)

// CrashQuorum cuts one follower off, lets the leader and the other nodes
// keep deciding for a moment, then kills every node but the cut-off one at
// once, as a power failure of the side that was deciding. Whatever the
// killed nodes acknowledged must be on their disks: with no-fsync it was
// still in their buffers, and the cut-off node never saw it, so every
// majority after the restart lacks it. Stop restarts the killed nodes and
// opens every link.
type CrashQuorum struct{ turn int }

// Name is the --nemesis value.
func (*CrashQuorum) Name() string { return "crash-quorum" }

// MinNodes: a cut-off leader and a quorum of others to kill.
func (*CrashQuorum) MinNodes() int { return 3 }

// Exclusive: it needs the cluster to itself.
func (*CrashQuorum) Exclusive() bool { return true }

// Start runs one attempt.
func (c *CrashQuorum) Start(ctx context.Context, x *Exec) error {
	c.turn++
	op := func(o fault.Op) fault.Op { o.Source, o.Attempt = c.Name(), c.turn; return o }
	ids := x.Cluster.IDs()
	leader := x.Cluster.Leader(ctx)
	if leader == 0 || len(ids) < 3 {
		x.Note(c.Name(), c.turn, "no leader: attempt skipped")
		return nil
	}
	others := without(ids, leader)
	x.Rand.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	cut := others[0]
	if _, err := x.Perform(ctx, op(fault.Op{F: fault.Partition, Links: isolate(cut, ids)})); err != nil {
		return err
	}
	x.Note(c.Name(), c.turn, fmt.Sprintf("n%d cut off", cut))
	sleep(ctx, 700*time.Millisecond)
	_, err := x.Perform(ctx, op(fault.Op{F: fault.Kill, Nodes: without(ids, cut)}))
	return err
}

// Stop restarts the killed nodes and opens every link.
func (c *CrashQuorum) Stop(ctx context.Context, x *Exec) error {
	return x.HealAll(ctx, c.Name(), c.turn)
}
