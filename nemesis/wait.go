package nemesis

import (
	"context"
	"time"
)

// log records a scenario step when the schedule is being recorded.
func (env *Env) log(s Step) int {
	if env.Log == nil {
		return -1
	}
	return env.Log(s)
}

// waitLeaderAmong polls the given nodes until one of them says it leads.
func waitLeaderAmong(ctx context.Context, env *Env, ids []int, within, every time.Duration) int {
	leader := 0
	pollUntil(ctx, within, every, func() bool {
		for _, id := range ids {
			if st, err := env.Cluster.Status(ctx, id); err == nil && st.Role == "leader" {
				leader = id
				return true
			}
		}
		return false
	})
	return leader
}

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
