package nemesis

import (
	"context"
	"fmt"
	"time"
)

// CrashQuorum cuts one follower off, lets the leader and the other nodes
// keep deciding for a moment, then kills the leader and enough followers
// that the survivors (the cut-off node among them) are a minority, all at
// once. Whatever the killed nodes acknowledged must be on their disks: with
// no-fsync it was still in their buffers, and the cut-off node never saw it.
// On heal the killed nodes restart and every link opens.
type CrashQuorum struct {
	killed []int
}

// Name is the --nemesis value.
func (*CrashQuorum) Name() string { return "crash-quorum" }

// Inject runs one attempt.
func (c *CrashQuorum) Inject(ctx context.Context, env *Env) (Fault, error) {
	ids := env.Cluster.IDs()
	leader := env.Cluster.Leader(ctx)
	if leader == 0 || len(ids) < 3 {
		return Fault{F: "start-crash-quorum", Detail: "no leader: attempt skipped"}, nil
	}
	others := without(ids, leader)
	env.Rand.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	cut := others[0]
	if err := env.Net.Block(isolate(cut, ids)); err != nil {
		return Fault{}, err
	}
	if env.Note != nil {
		env.Note(Fault{F: "step-crash-quorum", Targets: []int{cut}, Detail: fmt.Sprintf("n%d cut off", cut)})
	}
	sleep(ctx, 700*time.Millisecond)
	// kill the leader and followers until the rest is a minority
	victims := []int{leader}
	for _, id := range others[1:] {
		if len(ids)-len(victims) <= len(ids)/2 {
			break
		}
		victims = append(victims, id)
	}
	for _, id := range victims {
		if err := env.Cluster.Kill(id); err != nil {
			return Fault{}, err
		}
		c.killed = append(c.killed, id)
	}
	return Fault{F: "start-crash-quorum", Targets: victims, Detail: fmt.Sprintf("n%d cut off; kill -9 %s together", cut, names(victims))}, nil
}

// Heal restarts the killed nodes and opens every link.
func (c *CrashQuorum) Heal(ctx context.Context, env *Env) (Fault, error) {
	restarted := c.killed
	c.killed = nil
	for _, id := range restarted {
		if err := env.Cluster.Restart(ctx, id); err != nil {
			return Fault{}, err
		}
	}
	if err := env.Net.Block(nil); err != nil {
		return Fault{}, err
	}
	return Fault{F: "stop-crash-quorum", Targets: restarted, Detail: "restarted " + names(restarted) + "; all links open"}, nil
}
