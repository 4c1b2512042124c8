package nemesis

import (
	"context"
	"fmt"
	"time"
)

// ElectLagging makes a lagging node the leader: one follower X is cut off
// while the others keep deciding, then the leader is killed and the
// survivors are arranged in a star around X (each can reach X, none can
// reach another), so only X can gather a majority. X's recovery then spans
// every slot it missed: correct promises carry those chosen values, and X
// re-proposes them; with prepare-omits-committed they are hidden, and X
// fills chosen slots with other commands.
type ElectLagging struct {
	killed []int
}

// Name is the --nemesis value.
func (*ElectLagging) Name() string { return "elect-lagging" }

// Inject runs one attempt.
func (e *ElectLagging) Inject(ctx context.Context, env *Env) (Fault, error) {
	note := func(detail string, targets ...int) {
		if env.Note != nil {
			env.Note(Fault{F: "step-elect-lagging", Targets: targets, Detail: detail})
		}
	}
	c := env.Cluster
	ids := c.IDs()
	leader := c.Leader(ctx)
	if leader == 0 || len(ids) < 3 {
		return Fault{F: "start-elect-lagging", Detail: "no leader: attempt skipped"}, nil
	}
	others := without(ids, leader)
	env.Rand.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	x := others[0]
	if err := env.Net.Block(isolate(x, ids)); err != nil {
		return Fault{}, err
	}
	note(fmt.Sprintf("n%d cut off to fall behind", x), x)
	sleep(ctx, 2*time.Second)
	lag := ""
	if lst, err := c.Status(ctx, leader); err == nil {
		if xst, err := c.Status(ctx, x); err == nil {
			lag = fmt.Sprintf("n%d %d slots behind", x, int64(lst.CommitPoint)-int64(xst.CommitPoint))
		}
	}
	if err := c.Kill(leader); err != nil {
		return Fault{}, err
	}
	e.killed = append(e.killed, leader)
	survivors := without(ids, leader)
	var star [][2]int
	for _, a := range survivors {
		for _, b := range survivors {
			if a != b && a != x && b != x {
				star = append(star, [2]int{a, b})
			}
		}
	}
	if err := env.Net.Block(star); err != nil {
		return Fault{}, err
	}
	note(fmt.Sprintf("leader n%d killed; %s; the others reach only n%d", leader, lag, x), leader, x)
	l := waitLeaderAmong(ctx, env, survivors, 5*time.Second, 5*time.Millisecond)
	sleep(ctx, 500*time.Millisecond)
	return Fault{F: "start-elect-lagging", Targets: []int{x, leader},
		Detail: fmt.Sprintf("lagging n%d (%s) with the others in a star around it; leader n%d killed; new leader n%d", x, lag, leader, l)}, nil
}

// Heal restarts the killed leader and opens every link.
func (e *ElectLagging) Heal(ctx context.Context, env *Env) (Fault, error) {
	if err := env.Net.Block(nil); err != nil {
		return Fault{}, err
	}
	restarted := e.killed
	e.killed = nil
	for _, id := range restarted {
		if err := env.Cluster.Restart(ctx, id); err != nil {
			return Fault{}, err
		}
	}
	return Fault{F: "stop-elect-lagging", Targets: restarted, Detail: "restarted " + names(restarted) + "; all links open"}, nil
}
