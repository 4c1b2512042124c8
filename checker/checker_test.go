package checker

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/checker/history"
	"github.com/paxtest/paxtest/target/api"
)

// hb builds histories by hand.
type hb struct {
	events []history.Event
	seq    map[int]uint64
}

func (b *hb) add(t int64, p int, typ, f, key string, v any) *hb {
	if b.seq == nil {
		b.seq = map[int]uint64{}
	}
	if typ == history.Invoke {
		b.seq[p]++
	}
	raw, _ := json.Marshal(v)
	b.events = append(b.events, history.Event{Index: len(b.events), Time: t, Process: history.Process(p), Type: typ, F: f, Key: key,
		Value: raw, Client: fmt.Sprintf("p%d", p), Seq: b.seq[p]})
	return b
}

func str(s string) *string { return &s }

// fail completes p's operation with a definite failure and its error.
func (b *hb) fail(t int64, p int, f, key string, v any, why string) *hb {
	b.add(t, p, history.Fail, f, key, v)
	b.events[len(b.events)-1].Error = why
	return b
}

// on builds the checkers' History of the events, as a run's file would.
func (b *hb) on(t *testing.T, workload string) *History {
	t.Helper()
	h, err := NewHistory("test", workload, b.events)
	require.NoError(t, err)
	return h
}

func TestRegisterHistoriesAreJudged(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    *hb
		want Verdict
	}{
		{"sequential put then get", new(hb).
			add(1, 0, "invoke", "put", "k", "1").add(2, 0, "ok", "put", "k", "1").
			add(3, 1, "invoke", "get", "k", nil).add(4, 1, "ok", "get", "k", str("1")), Valid},
		{"stale read after an acknowledged put", new(hb).
			add(1, 0, "invoke", "put", "k", "1").add(2, 0, "ok", "put", "k", "1").
			add(3, 0, "invoke", "put", "k", "2").add(4, 0, "ok", "put", "k", "2").
			add(5, 1, "invoke", "get", "k", nil).add(6, 1, "ok", "get", "k", str("1")), Invalid},
		{"an indeterminate put may take effect later", new(hb).
			add(1, 0, "invoke", "put", "k", "1").add(2, 0, "info", "put", "k", "1").
			add(3, 1, "invoke", "get", "k", nil).add(4, 1, "ok", "get", "k", nil).
			add(5, 1, "invoke", "get", "k", nil).add(6, 1, "ok", "get", "k", str("1")), Valid},
		{"a failed put never happened", new(hb).
			add(1, 0, "invoke", "put", "k", "1").add(2, 0, "fail", "put", "k", "1").
			add(3, 1, "invoke", "get", "k", nil).add(4, 1, "ok", "get", "k", str("1")), Invalid},
		{"cas from the current value", new(hb).
			add(1, 0, "invoke", "put", "k", "1").add(2, 0, "ok", "put", "k", "1").
			add(3, 0, "invoke", "cas", "k", history.CAS{From: "1", To: "2"}).add(4, 0, "ok", "cas", "k", history.CAS{From: "1", To: "2"}).
			add(5, 1, "invoke", "get", "k", nil).add(6, 1, "ok", "get", "k", str("2")), Valid},
		{"cas acknowledged against a value never held", new(hb).
			add(1, 0, "invoke", "put", "k", "1").add(2, 0, "ok", "put", "k", "1").
			add(3, 0, "invoke", "cas", "k", history.CAS{From: "9", To: "2"}).add(4, 0, "ok", "cas", "k", history.CAS{From: "9", To: "2"}), Invalid},
		{"a failed cas is evidence: put 1, then a cas 1->2 that did not match", new(hb).
			add(1, 0, "invoke", "put", "k", "1").add(2, 0, "ok", "put", "k", "1").
			add(3, 1, "invoke", "cas", "k", history.CAS{From: "1", To: "2"}).add(4, 1, "fail", "cas", "k", history.CAS{From: "1", To: "2"}).
			add(5, 1, "invoke", "get", "k", nil).add(6, 1, "ok", "get", "k", str("1")), Invalid},
		{"a cas refused before it was proposed is no evidence", new(hb).
			add(1, 0, "invoke", "put", "k", "1").add(2, 0, "ok", "put", "k", "1").
			add(3, 1, "invoke", "cas", "k", history.CAS{From: "1", To: "2"}).fail(4, 1, "cas", "k", history.CAS{From: "1", To: "2"}, "not-leader").
			add(5, 1, "invoke", "get", "k", nil).add(6, 1, "ok", "get", "k", str("1")), Valid},
		{"a cas that did not match while another value was held", new(hb).
			add(1, 0, "invoke", "put", "k", "1").add(2, 0, "ok", "put", "k", "1").
			add(3, 1, "invoke", "cas", "k", history.CAS{From: "7", To: "2"}).fail(4, 1, "cas", "k", history.CAS{From: "7", To: "2"}, "cas-mismatch"), Valid},
		{"keys are independent", new(hb).
			add(1, 0, "invoke", "put", "a", "1").add(2, 0, "ok", "put", "a", "1").
			add(3, 1, "invoke", "get", "b", nil).add(4, 1, "ok", "get", "b", nil), Valid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := CheckLinearizable(tc.h.on(t, "register"), 10*time.Second)
			require.Equal(t, tc.want, r.Verdict, r.Detail)
			if tc.want == Invalid {
				require.Equal(t, KindNonLinearizable, r.Anomalies[0].Kind)
				require.Equal(t, []string{"k"}, r.FailingKeys)
			}
		})
	}
}

func TestACheckThatRunsOutOfTimeIsUnknownNeverValid(t *testing.T) {
	b := new(hb)
	for p := 0; p < 8; p++ { // eight overlapping writers and readers on one key
		b.add(int64(p), p, "invoke", "put", "k", fmt.Sprint(p))
	}
	for p := 0; p < 8; p++ {
		b.add(int64(100+p), p, "ok", "put", "k", fmt.Sprint(p))
	}
	r := CheckLinearizable(b.on(t, "register"), time.Nanosecond)
	require.Equal(t, Unknown, r.Verdict)
	require.Equal(t, Unknown, Combine(Valid, r.Verdict))
}

func entry(i uint64, ballot, value string) api.LogEntry {
	return api.LogEntry{Index: i, Ballot: ballot, Kind: "command", Digest: "d-" + value, Value: value}
}

func cmd(client string, seq uint64) string {
	b, _ := json.Marshal(api.Request{Client: client, Seq: seq, Op: "append", Key: "k", Value: "x"})
	return string(b)
}

func TestOverwrittenLogIndexIsCommittedThenOverwritten(t *testing.T) {
	samples := []LogSample{
		{Time: 1e9, Node: "n1", Entries: []api.LogEntry{entry(1, "1.1", "a"), entry(2, "4.1", "X")}},
		{Time: 2e9, Node: "n2", Entries: []api.LogEntry{entry(1, "1.1", "a"), entry(2, "5.2", "Y")}},
		{Time: 3e9, Node: "n2", Final: true, Entries: []api.LogEntry{entry(1, "1.1", "a"), entry(2, "5.2", "Y")}},
	}
	r := CheckLogAgreement(nil, samples)
	require.Equal(t, Invalid, r.Verdict)
	require.Len(t, r.Anomalies, 1)
	a := r.Anomalies[0]
	require.Equal(t, KindCommittedThenOverwritten, a.Kind)
	require.Equal(t, uint64(2), a.Index)
	require.Equal(t, int64(2e9), a.Time, "detectable once the second value is seen")
	require.Contains(t, a.Detail, "X at ballot 4.1 on n1")
	require.Contains(t, a.Detail, "Y at ballot 5.2 on n2")
}

func TestAcknowledgedWriteMissingFromFinalLogsIsLost(t *testing.T) {
	h := new(hb).add(1, 0, "invoke", "append", "k", "x").add(2, 0, "ok", "append", "k", "x").
		add(3, 0, "invoke", "append", "k", "x").add(4, 0, "ok", "append", "k", "x")
	samples := []LogSample{{Time: 5, Node: "n1", Final: true, Entries: []api.LogEntry{entry(1, "1.1", cmd("p0", 1))}}}
	r := CheckLogAgreement(h.on(t, "append"), samples)
	require.Equal(t, Invalid, r.Verdict)
	require.Len(t, r.Anomalies, 1)
	require.Equal(t, KindAckWriteLost, r.Anomalies[0].Kind)
	require.Contains(t, r.Anomalies[0].Detail, "seq 2")
	// without final logs the write check cannot decide
	require.Equal(t, Unknown, CheckLogAgreement(h.on(t, "append"), samples[:0]).Verdict)
	samples[0].Entries = append(samples[0].Entries, entry(2, "1.1", cmd("p0", 2)))
	require.Equal(t, Valid, CheckLogAgreement(h.on(t, "append"), samples).Verdict)
	// sampled during the run, then missing from the node's final log: lost
	during := LogSample{Time: 1, Node: "n1", Entries: samples[0].Entries}
	final := LogSample{Time: 5, Node: "n1", Final: true, Entries: []api.LogEntry{}, Missing: []uint64{2}}
	r = CheckLogAgreement(h.on(t, "append"), []LogSample{during, final})
	require.Equal(t, Invalid, r.Verdict)
	require.Equal(t, KindAckWriteLost, r.Anomalies[0].Kind)
}

func TestAppendReadsMustBeGrowingPrefixes(t *testing.T) {
	ok := new(hb).
		add(1, 0, "invoke", "append", "k", "a").add(2, 0, "ok", "append", "k", "a").
		add(3, 1, "invoke", "read", "k", nil).add(4, 1, "ok", "read", "k", []string{"a"}).
		add(5, 0, "invoke", "append", "k", "b").add(6, 0, "info", "append", "k", "b").
		add(7, 1, "invoke", "read", "k", nil).add(8, 1, "ok", "read", "k", []string{"a", "b"})
	require.Equal(t, Valid, CheckAppend(ok.on(t, "append")).Verdict)
	for _, tc := range []struct {
		name string
		h    *hb
		kind string
	}{
		{"lost acknowledged append", new(hb).
			add(1, 0, "invoke", "append", "k", "a").add(2, 0, "ok", "append", "k", "a").
			add(3, 1, "invoke", "read", "k", nil).add(4, 1, "ok", "read", "k", []string{}), KindAckWriteLost},
		{"diverging reads", new(hb).
			add(1, 0, "invoke", "append", "k", "a").add(2, 0, "info", "append", "k", "a").
			add(1, 2, "invoke", "append", "k", "b").add(2, 2, "info", "append", "k", "b").
			add(3, 1, "invoke", "read", "k", nil).add(4, 1, "ok", "read", "k", []string{"a"}).
			add(5, 1, "invoke", "read", "k", nil).add(6, 1, "ok", "read", "k", []string{"b"}), KindAppendNotPrefix},
		{"phantom", new(hb).
			add(3, 1, "invoke", "read", "k", nil).add(4, 1, "ok", "read", "k", []string{"z"}), KindPhantomValue},
		{"duplicate", new(hb).
			add(1, 0, "invoke", "append", "k", "a").add(2, 0, "ok", "append", "k", "a").
			add(3, 1, "invoke", "read", "k", nil).add(4, 1, "ok", "read", "k", []string{"a", "a"}), KindDuplicateAppend},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := CheckAppend(tc.h.on(t, "append"))
			require.Equal(t, Invalid, r.Verdict)
			require.Equal(t, tc.kind, r.Anomalies[0].Kind)
		})
	}
}

func TestCombineOrdersInvalidOverUnknownOverValid(t *testing.T) {
	require.Equal(t, Valid, Combine(Valid, Valid))
	require.Equal(t, Unknown, Combine(Valid, Unknown))
	require.Equal(t, Invalid, Combine(Unknown, Invalid, Valid))
	require.Equal(t, Unknown, Combine(Valid, ""), "a missing verdict is not valid")
}

func TestAWriteMissingFromTheFinalLogsReadIsUnknownWhenANodeDidNotAnswer(t *testing.T) {
	h := new(hb).add(1, 0, "invoke", "append", "k", "x").add(2, 0, "ok", "append", "k", "x")
	read := LogSample{Time: 5, Node: "n1", Final: true, Entries: []api.LogEntry{}}
	hung := LogSample{Time: 5, Node: "n2", Final: true, Entries: []api.LogEntry{}, Unreadable: "context deadline exceeded"}
	r := CheckLogAgreement(h.on(t, "append"), []LogSample{read, hung})
	require.Equal(t, Unknown, r.Verdict, "the write may be in n2's log")
	require.Contains(t, r.Detail, "n2 (context deadline exceeded)")
	require.Equal(t, Invalid, CheckLogAgreement(h.on(t, "append"), []LogSample{read}).Verdict)
}

func TestInvariantsANodeSawItselfBreakAreAnomalies(t *testing.T) {
	samples := []LogSample{
		{Time: 1, Node: "n1", Entries: []api.LogEntry{entry(1, "1.1", cmd("p0", 1))}},
		{Time: 2, Node: "n2", Violations: []string{"promise monotonic: promised 2.1 after 3.2"}, ViolationCount: 1},
		{Time: 3, Node: "n2", Violations: []string{"promise monotonic: promised 2.1 after 3.2", "prefix: applied slot 4 after slot 2"}, ViolationCount: 7},
	}
	r := CheckNodeInvariants(samples)
	require.Equal(t, Invalid, r.Verdict)
	require.Len(t, r.Anomalies, 2, "each violation once")
	require.Equal(t, KindInvariantViolated, r.Anomalies[1].Kind)
	require.Contains(t, r.Anomalies[1].Detail, "n2 saw itself break an invariant: prefix: applied slot 4 after slot 2 (7 violations in all by then)")
	require.Equal(t, Valid, CheckNodeInvariants(samples[:1]).Verdict)
	require.Equal(t, Unknown, CheckNodeInvariants(nil).Verdict, "no sample: nothing was checked")
}

func TestAClientNumberBeyondWhatTheCheckerKeepsIsRefusedNotWrapped(t *testing.T) {
	events := []history.Event{
		{Index: 0, Time: 1, Process: history.Process(math.MaxInt32) + 1, Type: history.Invoke, F: "get", Key: "k", Line: 1},
		{Index: 1, Time: 2, Process: history.Process(math.MaxInt32) + 1, Type: history.OK, F: "get", Key: "k", Line: 2},
	}
	_, err := NewHistory("h.jsonl", "register", events)
	var pe *history.ParseError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, 1, pe.Line)
	require.Equal(t, "process", pe.Field)
}

func TestAnIndeterminateGetIsLeftOutOfTheSearchAndAnIndeterminateWriteKeptOpen(t *testing.T) {
	ops := []*Op{
		{F: "put", Key: "k", Value: "1", Type: history.OK, Call: 1, Return: 2},
		{F: "get", Key: "k", Type: history.Info, Call: 3},
		{F: "put", Key: "k", Value: "2", Type: history.Info, Call: 4},
		{F: "get", Key: "k", Type: "", Call: 5}, // no completion
		{F: "get", Key: "k", Value: "1", Found: true, Type: history.OK, Call: 6, Return: 7},
	}
	got := keyOperations(nil, ops)
	require.Len(t, got, 3)
	require.Equal(t, "put", got[1].Input.(*Op).F)
	require.Equal(t, int64(never), got[1].Return, "the write may take effect at any later time")
}

func TestClientsNumberedBeyondTheDenseTablePairTheirInvocationsAndCompletions(t *testing.T) {
	far := history.Process(denseClients) + 7 // kept in the map, not the slice
	ev := func(p history.Process, typ string, line int) history.Event {
		return history.Event{Index: line - 1, Time: int64(line), Process: p, Type: typ, F: "get", Key: "k", Line: line}
	}
	h, err := NewHistory("h.jsonl", "register", []history.Event{
		ev(3, history.Invoke, 1), ev(far, history.Invoke, 2), ev(far, history.OK, 3), ev(3, history.OK, 4),
	})
	require.NoError(t, err)
	require.Len(t, h.Ops, 2)
	require.Equal(t, int32(4), h.Ops[0].DoneLine, "client 3 completes at line 4")
	require.Equal(t, int32(3), h.Ops[1].DoneLine, "the far client completes at line 3")

	for _, tc := range []struct {
		name   string
		events []history.Event
		line   int
	}{
		{"a far client completes with nothing open", []history.Event{ev(far, history.OK, 1)}, 1},
		{"a far client invokes twice", []history.Event{ev(far, history.Invoke, 1), ev(far, history.Invoke, 2)}, 2},
		{"a near client completes twice", []history.Event{ev(5, history.Invoke, 1), ev(5, history.OK, 2), ev(5, history.OK, 3)}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewHistory("h.jsonl", "register", tc.events)
			var pe *history.ParseError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, tc.line, pe.Line)
		})
	}
}

// stored is a revision of a key-value store: what it stored, no client.
func stored(key, value string) string {
	b, _ := json.Marshal(api.Request{Op: "put", Key: key, Value: value})
	return string(b)
}

func TestALogThatNamesNoClientHoldsAWriteByItsKeyAndValue(t *testing.T) {
	reg := new(hb).add(1, 0, "invoke", "put", "k", "1").add(2, 0, "ok", "put", "k", "1").
		add(3, 1, "invoke", "cas", "k", history.CAS{From: "1", To: "2"}).add(4, 1, "ok", "cas", "k", history.CAS{From: "1", To: "2"})
	app := new(hb).add(1, 0, "invoke", "append", "k", "a").add(2, 0, "ok", "append", "k", "a").
		add(3, 1, "invoke", "append", "k", "b").add(4, 1, "ok", "append", "k", "b")
	final := func(values ...string) []LogSample {
		s := LogSample{Time: 5, Node: "n1", Final: true}
		for i, v := range values {
			s.Entries = append(s.Entries, entry(uint64(i+2), "", v))
		}
		return []LogSample{s}
	}
	for _, tc := range []struct {
		name     string
		h        *hb
		workload string
		log      []LogSample
		want     Verdict
		lost     string
	}{
		{"both register writes stored", reg, "register", final(stored("k", "1"), stored("k", "2")), Valid, ""},
		{"the cas's value never stored", reg, "register", final(stored("k", "1")), Invalid, "cas k by p1"},
		{"a value stored under another key", reg, "register", final(stored("k", "1"), stored("j", "2")), Invalid, "cas k by p1"},
		{"each item of the stored lists", app, "append", final(stored("k", `["a"]`), stored("k", `["a","b"]`)), Valid, ""},
		{"an item in no stored list", app, "append", final(stored("k", `["a"]`)), Invalid, "append k by p1"},
		{"several keys in one revision", reg, "register", final(`[` + stored("k", "1") + `,` + stored("k", "2") + `]`), Valid, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := CheckLogAgreement(tc.h.on(t, tc.workload), tc.log)
			require.Equal(t, tc.want, r.Verdict, r.Detail)
			if tc.lost != "" {
				require.Len(t, r.Anomalies, 1)
				require.Equal(t, KindAckWriteLost, r.Anomalies[0].Kind)
				require.Contains(t, r.Anomalies[0].Detail, tc.lost)
			}
		})
	}
}

func TestARevisionStoredWithTwoMeaningsIsCommittedThenOverwritten(t *testing.T) {
	samples := []LogSample{
		{Time: 1e9, Node: "n1", Entries: []api.LogEntry{entry(2, "", stored("k", "1"))}},
		{Time: 2e9, Node: "n3", Entries: []api.LogEntry{entry(2, "", stored("k", "7"))}},
	}
	r := CheckLogAgreement(nil, samples)
	require.Equal(t, Invalid, r.Verdict)
	require.Equal(t, KindCommittedThenOverwritten, r.Anomalies[0].Kind)
	require.Contains(t, r.Anomalies[0].Detail, `"value":"1"} on n1`, "no ballot is named where the system keeps none")
	require.Contains(t, r.Anomalies[0].Detail, `"value":"7"} on n3`)
}

func TestAFailingKeyIsShownFromItsOneVerboseCheckFirstThenASample(t *testing.T) {
	b := new(hb)
	for k := 0; k < 30; k++ { // linearizable keys
		key, at := fmt.Sprintf("k%d", k), int64(10*k)
		b.add(at+1, 0, "invoke", "put", key, "1").add(at+2, 0, "ok", "put", key, "1").
			add(at+3, 1, "invoke", "get", key, nil).add(at+4, 1, "ok", "get", key, str("1"))
	}
	// a stale read: put 1, put 2, then get -> 1
	b.add(401, 0, "invoke", "put", "bad", "1").add(402, 0, "ok", "put", "bad", "1").
		add(403, 0, "invoke", "put", "bad", "2").add(404, 0, "ok", "put", "bad", "2").
		add(405, 1, "invoke", "get", "bad", nil).add(406, 1, "ok", "get", "bad", str("1"))
	lin := CheckLinearizable(b.on(t, "register"), time.Minute)
	require.Equal(t, Invalid, lin.Verdict)
	require.Equal(t, []string{"bad"}, lin.FailingKeys)
	require.NotEmpty(t, lin.shown)
	require.LessOrEqual(t, len(lin.shown), visualized)
	require.Equal(t, "bad", lin.shown[0].key, "the failing key is shown first")
	require.NotEmpty(t, lin.shown[0].info.PartialLinearizations(), "from porcupine's verbose result of the check that decided it")
	for _, sk := range lin.shown[1:] {
		require.NotEqual(t, "bad", sk.key)
		require.NotEmpty(t, sk.info.PartialLinearizations(), "sampled key %s", sk.key)
	}

	dir := t.TempDir()
	var index strings.Builder
	require.NoError(t, lin.Visualize(&index, filepath.Join(dir, "linearizability"), nil))
	require.Contains(t, index.String(), "bad</a> — not linearizable")
	pages, err := filepath.Glob(filepath.Join(dir, "linearizability", "*.html"))
	require.NoError(t, err)
	require.Len(t, pages, len(lin.shown))
}
