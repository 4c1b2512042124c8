package nemesis

import (
	"context"
	"errors"
	"time"
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
