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
