package history

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWrittenEventsParseBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
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
	out, err := ReadFile(path)
	require.NoError(t, err)
	require.Len(t, out, 3)
	for i := range in {
		in[i].Index = i
	}
	require.Equal(t, in, out)
	require.True(t, out[2].IsNemesis())
	b, _ := os.ReadFile(path)
	require.Contains(t, string(b), `"process":"nemesis"`)
}

func TestCreateNeverOverwritesAHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	require.NoError(t, os.WriteFile(path, []byte("keep\n"), 0o644))
	_, err := Create(path)
	require.Error(t, err)
	b, _ := os.ReadFile(path)
	require.Equal(t, "keep\n", string(b))
}

func TestParseErrorsNameFileAndLine(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"not json", `{"time":1,"process":0,"type":"invoke","f":"get"}` + "\n{oops\n", "line 2: not a JSON event"},
		{"bad type", `{"time":1,"process":0,"type":"maybe","f":"get"}` + "\n", `line 1: type "maybe"`},
		{"bad process", `{"time":1,"process":"x","type":"ok","f":"get"}` + "\n", "line 1:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(strings.NewReader(tc.text), "h.jsonl")
			require.ErrorContains(t, err, "h.jsonl "+tc.want)
		})
	}
	_, err := ReadFile(filepath.Join(t.TempDir(), "missing.jsonl"))
	require.ErrorContains(t, err, "missing.jsonl")
}

func TestTornLastLineIsLeftOut(t *testing.T) {
	text := `{"time":1,"process":0,"type":"invoke","f":"get"}` + "\n" + `{"time":2,"proc`
	out, err := Read(strings.NewReader(text), "h")
	require.NoError(t, err)
	require.Len(t, out, 1)
}

// The golden history under testdata parses to the expected counts.
func TestGoldenHistoryParses(t *testing.T) {
	out, err := ReadFile(filepath.Join("testdata", "small.jsonl"))
	require.NoError(t, err)
	counts := map[string]int{}
	for _, e := range out {
		counts[e.Type]++
	}
	require.Equal(t, map[string]int{Invoke: 3, OK: 2, Info: 2}, counts)
}
