package db

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/paxtest/paxtest/target/api"
)

var _ LogReader = (*Etcd)(nil)

// Log reads node n's revision history through n alone, as its committed
// log: slot r is revision r, and its entry is what that revision changed
// (each key and the value it was given, or its deletion), read by a watch
// from revision from on n's own store. Two members that disagree on what
// a revision changed have each committed a different history: the
// log-agreement check's committed-then-overwritten. Revision 1 is the
// empty store and has no entry. etcd keeps no term per revision, so an
// entry has no ballot. The run never compacts, so every revision is there
// to read; a compacted one is an error, never a gap.
func (e *Etcd) Log(ctx context.Context, n Node, from, to uint64, values bool) ([]api.LogEntry, error) {
	c, err := e.client(n)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, logWithin)
	defer cancel()
	// the member's own latest revision: a serializable read is answered by
	// its store, with or without a leader
	head, err := c.Get(ctx, "\x00", clientv3.WithSerializable(), clientv3.WithCountOnly())
	if err != nil {
		return nil, fmt.Errorf("revision of %s: %w", n.Name(), err)
	}
	last := uint64(head.Header.Revision)
	from = max(from, 2)
	if to == 0 || to > last {
		to = last
	}
	to = min(to, from+logPage-1)
	if from > to {
		return []api.LogEntry{}, nil
	}
	changes, err := watchRevisions(ctx, c, from, to)
	if err != nil {
		return nil, fmt.Errorf("revisions %d..%d of %s: %w", from, to, n.Name(), err)
	}
	return revisionEntries(changes, values)
}

const (
	logPage   = 1000 // revisions per read
	logWithin = 5 * time.Second
)

// errRevisionsEnded is a watch that closed before it reached the last
// revision asked for.
var errRevisionsEnded = errors.New("the watch ended before the last revision")

// watchRevisions collects the events of revisions from..to, by revision.
// Every revision after the first changes at least one key, so the watch
// has reached to once it delivered an event of it.
func watchRevisions(ctx context.Context, c *clientv3.Client, from, to uint64) (map[uint64][]*mvccpb.Event, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := map[uint64][]*mvccpb.Event{}
	for resp := range c.Watch(ctx, "", clientv3.WithPrefix(), clientv3.WithRev(int64(from))) {
		if err := resp.Err(); err != nil {
			return nil, err
		}
		for _, ev := range resp.Events {
			rev := uint64(ev.Kv.ModRevision)
			if rev <= to {
				out[rev] = append(out[rev], ev)
			}
			if rev >= to {
				return out, nil
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, errRevisionsEnded
}

// change is what a revision did to one key, in the contract's request
// fields (no client: a store keeps none).
type change struct {
	Op    string `json:"op"`
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

// revisionEntries makes each revision's changes a log entry: its digest
// names the changes, its value is them as the client contract's requests
// (a put of the key's new value, or a delete), one object or a list.
func revisionEntries(changes map[uint64][]*mvccpb.Event, values bool) ([]api.LogEntry, error) {
	revs := make([]uint64, 0, len(changes))
	for r := range changes {
		revs = append(revs, r)
	}
	sort.Slice(revs, func(a, b int) bool { return revs[a] < revs[b] })
	out := make([]api.LogEntry, 0, len(revs))
	for _, r := range revs {
		var reqs []change
		for _, ev := range changes[r] {
			c := change{Op: api.OpPut, Key: string(ev.Kv.Key), Value: string(ev.Kv.Value)}
			if ev.Type == mvccpb.DELETE {
				c = change{Op: "delete", Key: string(ev.Kv.Key)}
			}
			reqs = append(reqs, c)
		}
		var v any = reqs
		if len(reqs) == 1 {
			v = reqs[0]
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("revision %d: %w", r, err)
		}
		sum := sha256.Sum256(b)
		e := api.LogEntry{Index: r, Kind: "command", Digest: hex.EncodeToString(sum[:8])}
		if values {
			e.Value = string(b)
		}
		out = append(out, e)
	}
	return out, nil
}
