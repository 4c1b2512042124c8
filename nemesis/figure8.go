package nemesis

import (
	"context"
	"fmt"
	"time"
)

// Figure8 plays the seeds' stages 1-5 (PROTOCOL.md, "The seeds'
// schedule") against the live cluster, following roles rather than fixed
// node ids, while the workload keeps writing:
//
//  1. the leader L1 and one follower F1 are cut off from the other three:
//     L1 accepts client commands on L1 and F1 only (X, ballot B1);
//  2. L1 and F1 die; of the other three, the one elected (L2) is cut off
//     the instant it leads, so the commands it takes are accepted on L2
//     alone (Y, ballot B2 > B1) — A and B, two of five, cannot decide;
//  3. L2 dies; L1 and F1 restart with A, B cut off; the leader among the
//     three (L3) re-proposes X. Correct code re-accepts X at its new ballot
//     B3 > B2; reconfirm-old-ballot stores it at B1 yet counts it chosen.
//     The moment X is chosen, a follower of L3 (the carrier: A, as in the
//     seeds, unless A leads) is cut off and the other two die, before the
//     carrier learns X is chosen (under the bug its ballot B1 differs from
//     L3's, so the commit point alone never tells it, rule 3);
//  4. (they stay down)
//  5. L2 restarts with the carrier and B; elected, it recovers the X slots
//     from the carrier (X at B3 beats Y at B2: X survives) — or, under the
//     bug, X at B1 loses to Y at B2 and Y overwrites a chosen value.
//
// An attempt whose roles do not line up (no unchosen slot, no leader in
// time) is abandoned and healed; the schedule tries again.
type Figure8 struct {
	down []int
}

// Name is the --nemesis value.
func (*Figure8) Name() string { return "figure8" }

// Gap: attempts follow each other closely.
func (*Figure8) Gap(time.Duration) time.Duration { return 300 * time.Millisecond }

// Inject runs one attempt of stages 1-5.
func (f *Figure8) Inject(ctx context.Context, env *Env) (Fault, error) {
	note := func(stage, detail string, targets ...int) {
		if env.Note != nil {
			env.Note(Fault{F: "step-figure8", Targets: targets, Detail: stage + ": " + detail})
		}
	}
	c := env.Cluster
	ids := c.IDs()
	if len(ids) != 5 {
		return Fault{F: "start-figure8", Detail: "figure8 needs exactly 5 nodes"}, nil
	}
	l1 := c.Leader(ctx)
	if l1 == 0 {
		return Fault{F: "start-figure8", Detail: "no leader: attempt skipped"}, nil
	}
	var rest []int
	for _, id := range ids {
		if id != l1 {
			rest = append(rest, id)
		}
	}
	env.Rand.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	f1, others := rest[0], rest[1:]
	abandon := func(why string) (Fault, error) {
		note("abandon", why)
		return Fault{F: "start-figure8", Targets: []int{l1, f1}, Detail: "attempt abandoned: " + why}, nil
	}

	// stage 1
	if err := env.Net.Block(cutBetween([]int{l1, f1}, others)); err != nil {
		return Fault{}, err
	}
	note("stage1", fmt.Sprintf("leader n%d and n%d cut off from %s: X accepted on a minority", l1, f1, names(others)), l1, f1)
	sleep(ctx, 400*time.Millisecond)
	st, err := c.Status(ctx, l1)
	if err != nil || st.MaxSlot <= st.CommitPoint {
		return abandon(fmt.Sprintf("n%d holds no unchosen slot", l1))
	}
	xFrom, xTo := st.CommitPoint+1, st.MaxSlot
	observed := env.log(Step{Op: "observe", Node: l1, Slot: st.CommitPoint})

	// stage 2
	for _, id := range []int{l1, f1} {
		if err := c.Kill(id); err != nil {
			return Fault{}, err
		}
		f.down = append(f.down, id)
	}
	l2 := env.awaitLeader(ctx, others)
	if l2 == 0 {
		return abandon("no leader among " + names(others))
	}
	if err := env.Net.Block(isolate(l2, ids)); err != nil {
		return Fault{}, err
	}
	var ab []int
	for _, id := range others {
		if id != l2 {
			ab = append(ab, id)
		}
	}
	a, b := ab[0], ab[1]
	note("stage2", fmt.Sprintf("n%d, n%d down; n%d elected and cut off: Y accepted on n%d alone", l1, f1, l2, l2), l2)
	sleep(ctx, 400*time.Millisecond)

	// stage 3
	if err := c.Kill(l2); err != nil {
		return Fault{}, err
	}
	f.down = append(f.down, l2)
	if err := env.Net.Block(append(isolate(b, ids), isolate(l2, ids)...)); err != nil {
		return Fault{}, err
	}
	for _, id := range []int{l1, f1} {
		if err := c.Restart(ctx, id); err != nil {
			return Fault{}, err
		}
	}
	f.down = []int{l2}
	note("stage3", fmt.Sprintf("n%d down; n%d, n%d back with n%d; n%d cut off", l2, l1, f1, a, b), l1, f1, a)
	l3 := env.awaitLeader(ctx, []int{l1, f1, a})
	if l3 == 0 {
		return abandon(fmt.Sprintf("no leader among n%d, n%d, n%d", l1, f1, a))
	}
	// The carrier takes X into stage 5: a follower of stage 3 (A, as in
	// the seeds, unless A leads). The other two die.
	carrier := a
	if l3 == a {
		carrier = f1
	}
	var doomed []int
	for _, id := range []int{l1, f1, a} {
		if id != carrier {
			doomed = append(doomed, id)
		}
	}
	// the instant the X slots are chosen: cut the carrier off, kill the rest
	chosen := false
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		if st, err := c.Status(ctx, l3); err == nil && st.CommitPoint >= xFrom {
			chosen = true
			break
		}
		sleep(ctx, time.Millisecond)
	}
	if err := env.Net.Block(append(isolate(carrier, ids), append(isolate(b, ids), isolate(l2, ids)...)...)); err != nil {
		return Fault{}, err
	}
	for _, id := range doomed {
		if err := c.Kill(id); err != nil {
			return Fault{}, err
		}
	}
	f.down = append([]int{l2}, doomed...)
	env.log(Step{Op: "await-commit", Node: l3, Ref: observed})
	if !chosen {
		return abandon(fmt.Sprintf("n%d did not choose slot %d in time", l3, xFrom))
	}
	note("stage3-chosen", fmt.Sprintf("n%d chose slots %d..%d; n%d cut off, %s killed", l3, xFrom, xTo, carrier, names(doomed)), l3)

	// stage 5
	if err := env.Net.Block(append(isolate(doomed[0], ids), isolate(doomed[1], ids)...)); err != nil {
		return Fault{}, err
	}
	if err := c.Restart(ctx, l2); err != nil {
		return Fault{}, err
	}
	f.down = doomed
	note("stage5", fmt.Sprintf("n%d back with n%d, n%d; %s stay down", l2, carrier, b, names(doomed)), l2, carrier, b)
	l5 := env.awaitLeader(ctx, []int{l2, carrier, b})
	sleep(ctx, 300*time.Millisecond)
	return Fault{F: "start-figure8", Targets: []int{l1, f1, l2, a, b},
		Detail: fmt.Sprintf("L1=n%d F1=n%d L2=n%d L3=n%d carrier=n%d B=n%d; X slots %d..%d; stage 5 leader n%d", l1, f1, l2, l3, carrier, b, xFrom, xTo, l5)}, nil
}

// Heal restarts every node the attempt left down and opens every link.
func (f *Figure8) Heal(ctx context.Context, env *Env) (Fault, error) {
	if err := env.Net.Block(nil); err != nil {
		return Fault{}, err
	}
	restarted := f.down
	f.down = nil
	for _, id := range env.Cluster.IDs() {
		if err := env.Cluster.Restart(ctx, id); err != nil {
			return Fault{}, err
		}
	}
	return Fault{F: "stop-figure8", Targets: restarted, Detail: "all links open, every node running"}, nil
}

// awaitLeader waits for one of ids to lead and records the wait, so a
// replay waits for the same election instead of a recorded time.
func (env *Env) awaitLeader(ctx context.Context, ids []int) int {
	l := waitLeaderAmong(ctx, env, ids, 5*time.Second, 2*time.Millisecond)
	env.log(Step{Op: "await-leader", Nodes: ids, Node: l})
	return l
}

// log records a scenario step when the schedule is being recorded.
func (env *Env) log(s Step) int {
	if env.Log == nil {
		return -1
	}
	return env.Log(s)
}

// waitLeaderAmong polls the given nodes until one of them says it leads.
func waitLeaderAmong(ctx context.Context, env *Env, ids []int, within, every time.Duration) int {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, id := range ids {
			if st, err := env.Cluster.Status(ctx, id); err == nil && st.Role == "leader" {
				return id
			}
		}
		sleep(ctx, every)
	}
	return 0
}

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
