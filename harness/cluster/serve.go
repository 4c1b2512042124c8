package cluster

import (
	"context"
	"fmt"
	"time"
)

// StartError says a node did not start: its process exited while
// starting, or it did not answer in time. The run tells it from its own
// failures by its DidNotStart method (errors.As), as the nemesis does.
type StartError struct {
	Node   string
	Exited bool // the process exited (else it ran but did not answer)
	Err    error
	Log    string // where its log is
	Tail   string // the log's last lines
}

func (e *StartError) Error() string {
	if e.Exited {
		return fmt.Sprintf("node %s exited while starting (%v); its log %s says:\n%s", e.Node, e.Err, e.Log, e.Tail)
	}
	return fmt.Sprintf("node %s did not answer within %v; its log %s says:\n%s", e.Node, startWithin, e.Log, e.Tail)
}

func (e *StartError) Unwrap() error { return e.Err }

// DidNotStart marks the error as the node's, not the harness's.
func (e *StartError) DidNotStart() bool { return true }

// startWithin bounds how long a started node may take to answer.
const startWithin = 10 * time.Second

// Serves reports whether node id serves now: its process runs, it is
// ready (the db's probe) and it answers for its status; the error says
// what it does not do.
func (c *Cluster) Serves(ctx context.Context, id int) error {
	n := c.Node(id)
	if c.IsDown(id) {
		return fmt.Errorf("%s is down", n.Name())
	}
	if err := c.cfg.DB.Ready(ctx, n.Node); err != nil {
		return fmt.Errorf("%s is not ready: %w", n.Name(), err)
	}
	if _, err := c.Status(ctx, id); err != nil {
		return fmt.Errorf("%s does not answer for its status: %w", n.Name(), err)
	}
	return nil
}

// LogTail is the last lines of node id's log.
func (c *Cluster) LogTail(id, lines int) string { return tail(c.Node(id).LogPath, lines) }
