package harness

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/paxtest/paxtest/checker"
	"github.com/paxtest/paxtest/checker/history"
)

// awaitServing waits, after the final heal, until every node in play
// serves again (its process runs, it is ready, it answers for its
// status), for at most servePerRecovery times the system's recovery
// time. A node that does not is recorded as did-not-recover, by name,
// with the fault it last took and its log's last lines: a liveness
// finding of the run, not a failure of the harness. A node that rightly
// refused its damaged data is left out: that is the corrupt fault's
// own outcome.
func (r *run) awaitServing(ctx context.Context) error {
	bound := servePerRecovery * r.o.recovery()
	deadline := time.Now().Add(bound)
	members := r.configuration(ctx)
	for _, id := range r.cluster.IDs() {
		if r.x.Stopped(id) || members != nil && !members[id] {
			continue // refused its damaged data, or no longer a member (etcd stops a removed member)
		}
		var why error
		for {
			if why = r.cluster.Serves(ctx, id); why == nil || r.cluster.IsDown(id) || !time.Now().Before(deadline) {
				break
			}
			if !sleepCtx(ctx, 50*time.Millisecond) {
				return errInterrupted
			}
		}
		if why == nil {
			continue
		}
		r.appendEvent(history.Event{Time: r.clock.Now(), Process: history.NemesisProcess, Type: history.Info,
			F: checker.EventDidNotRecover, Targets: []int{id}, Detail: r.notRecovered(id, bound, why)})
	}
	return nil
}

// notRecovered says how node id failed to serve again: what it does not
// do, the fault it last took and the end of its log.
func (r *run) notRecovered(id int, bound time.Duration, why error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "n%d did not serve again within %v of the final heal (%v)", id, bound, why)
	if op, ok := r.x.LastFault(id); ok {
		fmt.Fprintf(&b, "; the last fault on it: %s at %.1f s", op.Describe(), float64(op.Time)/1e9)
	} else {
		b.WriteString("; no fault was performed on it")
	}
	fmt.Fprintf(&b, "; its log ends:\n%s", r.cluster.LogTail(id, 8))
	return b.String()
}

// configuration is the nodes of the configuration in effect or pending,
// as the leader reports it (nil: no leader answered, or it names none).
func (r *run) configuration(ctx context.Context) map[int]bool {
	leader := r.cluster.Leader(ctx)
	if leader == 0 {
		return nil
	}
	st, err := r.cluster.Status(ctx, leader)
	if err != nil || len(st.Members) == 0 {
		return nil
	}
	out := map[int]bool{}
	for _, id := range append(st.Members, st.Pending...) {
		out[int(id)] = true
	}
	return out
}
