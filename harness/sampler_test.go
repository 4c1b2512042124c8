package harness

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/harness/db"
	"github.com/paxtest/paxtest/target/api"
)

// fakeLogs answers log reads from the log logAt returns for the n-th read
// (from 0), and counts the values it sent.
type fakeLogs struct {
	logAt      func(n int) []api.LogEntry
	reads      atomic.Int64
	valuesSent *atomic.Int64
}

var _ db.LogReader = (*fakeLogs)(nil)

func (f *fakeLogs) Log(_ context.Context, _ db.Node, from, _ uint64, values bool) ([]api.LogEntry, error) {
	out := []api.LogEntry{}
	for _, e := range f.logAt(int(f.reads.Add(1) - 1)) {
		if e.Index < from {
			continue
		}
		if !values {
			e.Value = ""
		} else {
			f.valuesSent.Add(1)
		}
		out = append(out, e)
	}
	return out, nil
}

func fakeLog(logAt func(n int) []api.LogEntry, valuesSent *atomic.Int64) *fakeLogs {
	return &fakeLogs{logAt: logAt, valuesSent: valuesSent}
}

func logOf(values ...string) []api.LogEntry {
	var es []api.LogEntry
	for i, v := range values {
		es = append(es, api.LogEntry{Index: uint64(i + 1), Ballot: "1.1", Kind: "command", Digest: "d-" + v, Value: v})
	}
	return es
}

func TestAWholeLogReadFetchesOnlyTheValuesNotInTheFileYet(t *testing.T) {
	log := logOf("a", "b", "c", "d", "e")
	var sent atomic.Int64
	logs := fakeLog(func(int) []api.LogEntry { return log }, &sent)
	s := &sampler{logs: logs, written: map[string]bool{"d-a": true, "d-b": true, "d-c": true}}
	got, err := s.wholeLog(context.Background(), db.Node{ID: 1})
	require.NoError(t, err)
	require.Equal(t, []api.LogEntry{
		{Index: 1, Ballot: "1.1", Kind: "command", Digest: "d-a"}, {Index: 2, Ballot: "1.1", Kind: "command", Digest: "d-b"},
		{Index: 3, Ballot: "1.1", Kind: "command", Digest: "d-c"}, log[3], log[4]}, got)
	require.EqualValues(t, 2, sent.Load(), "only d and e travel with their values")
}

func TestAWholeLogReadDoesNotMixTwoReadsOfAChangedSlot(t *testing.T) {
	before, after := logOf("a", "b", "c"), logOf("a", "x", "c")
	var sent atomic.Int64
	logs := fakeLog(func(n int) []api.LogEntry {
		if n == 0 {
			return before
		}
		return after
	}, &sent)
	s := &sampler{logs: logs, written: map[string]bool{"d-a": true}}
	got, err := s.wholeLog(context.Background(), db.Node{ID: 1})
	require.NoError(t, err)
	require.Equal(t, after, got, "slot 2 changed between the digests and the values: the log is read again whole")
}
