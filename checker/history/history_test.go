package history

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWrittenEventsParseBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.jsonl")
	w, err := Create(path)
	require.NoError(t, err)
	in := []Event{
		{Time: 1, Process: 0, Type: Invoke, F: "put", Key: "k", Value: json.RawMessage(`"v1"`), Client: "p0", Seq: 1},
		{Time: 5, Process: 0, Type: OK, F: "put", Key: "k", Value: json.RawMessage(`"v1"`), Client: "p0", Seq: 1, Node: "n2"},
		{Time: 6, Process: NemesisProcess, Type: Info, F: "start-partition", Value: json.RawMessage("null"), Targets: []int{1, 2}, Detail: "halves"},
	}
	for _, e := range in {
		_, err := w.Append(e)
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	out, torn, err := ReadFile(path)
	require.NoError(t, err)
	require.Nil(t, torn)
	require.Len(t, out, 3)
	for i := range in {
		in[i].Index, in[i].Line = i, i+1
	}
	require.Equal(t, in, out)
	require.True(t, out[2].IsNemesis())
	b, _ := os.ReadFile(path)
	require.Contains(t, string(b), `"process":"nemesis"`)
}

func TestCreateNeverOverwritesAHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.jsonl")
	require.NoError(t, os.WriteFile(path, []byte("keep\n"), 0o644))
	_, err := Create(path)
	require.Error(t, err)
	b, _ := os.ReadFile(path)
	require.Equal(t, "keep\n", string(b))
}

func TestTheReaderRefusesWhatItDoesNotUnderstandNamingFileLineAndField(t *testing.T) {
	ok := `{"index":0,"time":1,"process":0,"type":"invoke","f":"get","key":"k","value":null}` + "\n"
	for _, tc := range []struct{ name, text, want string }{
		{"not json", ok + "{oops\n", "h.jsonl line 2: "},
		{"bad type", `{"time":1,"process":0,"type":"maybe","f":"get"}` + "\n", `h.jsonl line 1 field type: "maybe" is not invoke, ok, fail or info`},
		{"bad process", `{"time":1,"process":"x","type":"ok","f":"get"}` + "\n", "h.jsonl line 1 field process: "},
		{"no time", `{"process":0,"type":"invoke","f":"get"}` + "\n", "h.jsonl line 1 field time: missing"},
		{"time not a number", `{"time":"soon","process":0,"type":"invoke","f":"get"}` + "\n", "h.jsonl line 1 field time"},
		{"fractional time", `{"time":1.5,"process":0,"type":"invoke","f":"get"}` + "\n", "h.jsonl line 1 field time: 1.5 is not a non-negative integer"},
		{"negative time", `{"time":-3,"process":0,"type":"invoke","f":"get"}` + "\n", "h.jsonl line 1 field time: -3 is not a non-negative integer"},
		{"no f", `{"time":1,"process":0,"type":"invoke"}` + "\n", "h.jsonl line 1 field f: missing"},
		{"unknown field", `{"time":1,"process":0,"type":"invoke","f":"get","colour":"red"}` + "\n", `h.jsonl line 1 field colour: unknown field`},
		{"duplicate index", ok + `{"index":0,"time":2,"process":0,"type":"ok","f":"get","key":"k","value":null}` + "\n", "h.jsonl line 2 field index: 0 does not increase"},
		{"index out of order", `{"index":5,"time":1,"process":0,"type":"invoke","f":"get"}` + "\n" + `{"index":3,"time":2,"process":0,"type":"ok","f":"get"}` + "\n", "h.jsonl line 2 field index: 3 does not increase (the line before had 5)"},
		{"index missing midway", ok + `{"time":2,"process":0,"type":"ok","f":"get","key":"k","value":null}` + "\n", "h.jsonl line 2 field index: missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Stream(strings.NewReader(tc.text), "h.jsonl", func(*Event) error { return nil })
			require.ErrorContains(t, err, tc.want)
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
		})
	}
	_, _, err := ReadFile(filepath.Join(t.TempDir(), "missing.jsonl"))
	require.ErrorContains(t, err, "missing.jsonl")
}

func TestACompleteLastLineIsReadAndATornOneIsReportedWithItsOffset(t *testing.T) {
	first := `{"time":1,"process":0,"type":"invoke","f":"get"}` + "\n"
	var got []Event
	torn, err := Stream(strings.NewReader(first+`{"time":2,"process":0,"type":"ok","f":"get"}`), "h", func(e *Event) error {
		got = append(got, *e)
		return nil
	})
	require.NoError(t, err)
	require.Nil(t, torn)
	require.Len(t, got, 2, "a whole last line without its newline is an event")
	require.Equal(t, 2, got[1].Line)

	got = nil
	torn, err = Stream(strings.NewReader(first+`{"time":2,"proc`), "h", func(e *Event) error {
		got = append(got, *e)
		return nil
	})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, &Torn{Line: 2, Offset: int64(len(first)), Bytes: len(`{"time":2,"proc`)}, torn)
}

func TestEventsLongerThanAChunkAndManyChunksKeepTheirOrder(t *testing.T) {
	var b strings.Builder
	n := 3 * chunkSize / 60
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"index":%d,"time":%d,"process":1,"type":"info","f":"get","detail":"x"}`+"\n", i, i)
	}
	fmt.Fprintf(&b, `{"index":%d,"time":1,"process":"nemesis","type":"info","f":"note","detail":%q}`+"\n", n, strings.Repeat("y", 2*chunkSize))
	i := 0
	torn, err := Stream(strings.NewReader(b.String()), "h", func(e *Event) error {
		require.Equal(t, i, e.Index)
		require.Equal(t, i+1, e.Line)
		i++
		return nil
	})
	require.NoError(t, err)
	require.Nil(t, torn)
	require.Equal(t, n+1, i)
}

// The golden history under testdata parses to the expected counts.
func TestGoldenHistoryParses(t *testing.T) {
	out, _, err := ReadFile(filepath.Join("testdata", "small.jsonl"))
	require.NoError(t, err)
	counts := map[string]int{}
	for _, e := range out {
		counts[e.Type]++
	}
	require.Equal(t, map[string]int{Invoke: 3, OK: 2, Info: 2}, counts)
}
