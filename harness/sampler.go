package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/paxtest/paxtest/checker"
	"github.com/paxtest/paxtest/harness/cluster"
	"github.com/paxtest/paxtest/harness/db"
	"github.com/paxtest/paxtest/target/api"
)

// sampler reads every node's chosen log during the run and at the end and
// appends what changed to logs.jsonl. A final sample lists only what
// changed since the node's earlier samples, and the indices it no longer
// has; the checker rebuilds each node's whole final log from them. A value is written with the first
// entry that carries its digest; later entries with that digest leave it
// out (the checker restores it), which keeps the file small.
type sampler struct {
	cluster *cluster.Cluster
	logs    db.LogReader
	now     func() int64

	mu       sync.Mutex
	f        *os.File
	w        *bufio.Writer
	known    map[int]map[uint64]string // node -> index -> digest
	ref      map[uint64]string         // index -> the digest first reported by any node
	written  map[string]bool           // digests whose value is in the file
	reported map[int]int               // node -> the violation count last written
	err      error
	// diverged is closed the first time two nodes report different chosen
	// values for one index (or a node changes one): a certain violation.
	diverged  chan struct{}
	closedDiv bool
}

func newSampler(path string, c *cluster.Cluster, logs db.LogReader, now func() int64) (*sampler, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create log samples %s: %w", path, err)
	}
	return &sampler{cluster: c, logs: logs, now: now, f: f, w: bufio.NewWriterSize(f, 1<<20),
		known: map[int]map[uint64]string{}, ref: map[uint64]string{}, written: map[string]bool{}, reported: map[int]int{}, diverged: make(chan struct{})}, nil
}

// run samples every interval until ctx is done (a nil sampler, for a
// system that serves no log, samples nothing).
func (s *sampler) run(ctx context.Context, every time.Duration) {
	if s == nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, n := range s.cluster.Nodes() {
				if s.cluster.IsDown(n.ID) {
					continue
				}
				// a write failure is kept in s.err and returned by close
				_ = s.sample(ctx, n)
				_ = s.violations(ctx, n)
			}
		}
	}
}

// final reads every live node's whole log, from all of them at once.
func (s *sampler) final(ctx context.Context) error {
	if s == nil {
		return nil
	}
	var nodes []*cluster.Node
	for _, n := range s.cluster.Nodes() {
		if !s.cluster.IsDown(n.ID) {
			nodes = append(nodes, n)
		}
	}
	type read struct {
		time    int64
		entries []api.LogEntry
		err     error
	}
	reads := make([]read, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reads[i].time = s.now()
			reads[i].entries, reads[i].err = s.wholeLog(ctx, n.Node)
		}()
	}
	wg.Wait()
	for i, n := range nodes {
		if err := s.violations(ctx, n); err != nil {
			return err
		}
		if err := reads[i].err; err != nil {
			if ctx.Err() != nil {
				return err
			}
			// a node that does not answer is the target's failure, not the
			// harness's: the checker is told, and judges without its log
			unread := fmt.Errorf("read the final log of %s: %w", n.Name(), err)
			if err := s.write(checker.LogSample{Time: s.now(), Node: n.Name(), Final: true, Entries: []api.LogEntry{}, Unreadable: unread.Error()}); err != nil {
				return err
			}
			continue
		}
		if err := s.record(n, reads[i].time, reads[i].entries, true); err != nil {
			return err
		}
	}
	return nil
}

// violations records the invariant violations a node reports of itself,
// when their count changed since its last report (a node that does not
// answer is tried again next time).
func (s *sampler) violations(ctx context.Context, n *cluster.Node) error {
	st, err := s.cluster.Status(ctx, n.ID)
	if err != nil || st.ViolationCount == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reported[n.ID] == st.ViolationCount {
		return nil
	}
	s.reported[n.ID] = st.ViolationCount
	return s.writeLocked(checker.LogSample{Time: s.now(), Node: n.Name(), Entries: []api.LogEntry{}, Violations: st.Violations, ViolationCount: st.ViolationCount})
}

func (s *sampler) sample(ctx context.Context, n *cluster.Node) error {
	s.mu.Lock()
	// re-read a window below the highest index seen, so a slot that a
	// restarted node re-learned with another value is noticed
	from := max(uint64(len(s.known[n.ID])), 65) - 64
	s.mu.Unlock()
	t := s.now()
	entries, err := s.readLog(ctx, n.Node, from, false, true)
	if err != nil {
		return nil // a paused or partitioned node: try again later
	}
	return s.record(n, t, entries, false)
}

// record appends to the samples what a node's log read at time t shows
// that its earlier samples did not.
func (s *sampler) record(n *cluster.Node, t int64, entries []api.LogEntry, final bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	known := s.known[n.ID]
	if known == nil {
		known = map[uint64]string{}
		s.known[n.ID] = known
	}
	var missing []uint64
	if final {
		missing = forget(known, entries)
	}
	var out []api.LogEntry
	var same [][2]uint64
	for _, e := range entries {
		if known[e.Index] == e.Digest {
			continue
		}
		known[e.Index] = e.Digest
		switch ref, ok := s.ref[e.Index]; {
		case ok && ref == e.Digest:
			// the value another node already reported: a range suffices
			if n := len(same); n > 0 && same[n-1][1]+1 == e.Index {
				same[n-1][1] = e.Index
			} else {
				same = append(same, [2]uint64{e.Index, e.Index})
			}
			continue
		case !ok:
			s.ref[e.Index] = e.Digest
		case !s.closedDiv:
			s.closedDiv = true
			close(s.diverged)
		}
		if s.written[e.Digest] {
			e.Value = ""
		} else {
			s.written[e.Digest] = true
		}
		out = append(out, e)
	}
	if len(out) == 0 && len(same) == 0 && !final {
		return nil
	}
	if out == nil {
		out = []api.LogEntry{}
	}
	return s.writeLocked(checker.LogSample{Time: t, Node: n.Name(), Final: final, Entries: out, Same: same, Missing: missing})
}

// readLog reads a node's log from index from: one page, or every page
// for a whole read; with or without the values.
func (s *sampler) readLog(ctx context.Context, n db.Node, from uint64, whole, values bool) ([]api.LogEntry, error) {
	var entries []api.LogEntry
	for {
		page, err := s.logs.Log(ctx, n, from, 0, values)
		if err != nil {
			return nil, err
		}
		entries = append(entries, page...)
		if len(page) == 0 || !whole {
			return entries, nil
		}
		from = page[len(page)-1].Index + 1
	}
}

// wholeLog reads a node's whole log: its digests, then the values of
// those from the first digest whose value is not in the file yet (the
// periodic samples wrote the others'). If a slot changed between the two
// reads it reads the whole log again, values and all, rather than mix them.
func (s *sampler) wholeLog(ctx context.Context, n db.Node) ([]api.LogEntry, error) {
	entries, err := s.readLog(ctx, n, 1, true, false)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	first := len(entries)
	for j, e := range entries {
		if !s.written[e.Digest] {
			first = j
			break
		}
	}
	s.mu.Unlock()
	if first == len(entries) {
		return entries, nil
	}
	tail, err := s.readLog(ctx, n, entries[first].Index, true, true)
	if err != nil {
		return nil, err
	}
	t := 0
	for j := first; j < len(entries); j++ {
		for t < len(tail) && tail[t].Index < entries[j].Index {
			t++
		}
		if t == len(tail) || tail[t].Index != entries[j].Index || tail[t].Digest != entries[j].Digest {
			return s.readLog(ctx, n, 1, true, true)
		}
		entries[j].Value = tail[t].Value
	}
	return entries, nil
}

// forget removes from known, and returns in order, the indices a node
// reported before and no longer has: lost entries.
func forget(known map[uint64]string, entries []api.LogEntry) []uint64 {
	present := make(map[uint64]bool, len(entries))
	for _, e := range entries {
		present[e.Index] = true
	}
	var missing []uint64
	for i := range known {
		if !present[i] {
			missing = append(missing, i)
			delete(known, i)
		}
	}
	sort.Slice(missing, func(a, b int) bool { return missing[a] < missing[b] })
	return missing
}

func (s *sampler) write(ls checker.LogSample) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeLocked(ls)
}

func (s *sampler) writeLocked(ls checker.LogSample) error {
	b, err := json.Marshal(ls)
	if err == nil {
		_, err = s.w.Write(append(b, '\n'))
	}
	if err != nil && s.err == nil {
		s.err = fmt.Errorf("write log samples: %w", err)
	}
	return s.err
}

// divergence is closed at the first divergence (never, for a nil sampler).
func (s *sampler) divergence() <-chan struct{} {
	if s == nil {
		return nil
	}
	return s.diverged
}

func (s *sampler) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.w.Flush()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if s.err != nil {
		return s.err
	}
	return err
}
