package harness

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/target/api"
)

// fakeLog serves /debug/log from the log logAt returns for the n-th request
// (from 0), and counts the values it sent.
func fakeLog(t *testing.T, logAt func(n int) []api.LogEntry, valuesSent *atomic.Int64) api.Client {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		from, _ := strconv.ParseUint(r.URL.Query().Get("from"), 10, 64)
		values := r.URL.Query().Get("values") != "0"
		out := []api.LogEntry{}
		for _, e := range logAt(int(requests.Add(1) - 1)) {
			if e.Index < from {
				continue
			}
			if !values {
				e.Value = ""
			} else {
				valuesSent.Add(1)
			}
			out = append(out, e)
		}
		require.NoError(t, json.NewEncoder(w).Encode(out))
	}))
	t.Cleanup(srv.Close)
	return api.Client{Addr: strings.TrimPrefix(srv.URL, "http://")}
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
	cl := fakeLog(t, func(int) []api.LogEntry { return log }, &sent)
	s := &sampler{written: map[string]bool{"d-a": true, "d-b": true, "d-c": true}}
	got, err := s.wholeLog(context.Background(), cl)
	require.NoError(t, err)
	require.Equal(t, []api.LogEntry{
		{Index: 1, Ballot: "1.1", Kind: "command", Digest: "d-a"}, {Index: 2, Ballot: "1.1", Kind: "command", Digest: "d-b"},
		{Index: 3, Ballot: "1.1", Kind: "command", Digest: "d-c"}, log[3], log[4]}, got)
	require.EqualValues(t, 2, sent.Load(), "only d and e travel with their values")
}

func TestAWholeLogReadDoesNotMixTwoReadsOfAChangedSlot(t *testing.T) {
	before, after := logOf("a", "b", "c"), logOf("a", "x", "c")
	var sent atomic.Int64
	cl := fakeLog(t, func(n int) []api.LogEntry {
		if n == 0 {
			return before
		}
		return after
	}, &sent)
	s := &sampler{written: map[string]bool{"d-a": true}}
	got, err := s.wholeLog(context.Background(), cl)
	require.NoError(t, err)
	require.Equal(t, after, got, "slot 2 changed between the digests and the values: the log is read again whole")
}
