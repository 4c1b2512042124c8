package checker

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/checker/history"
)

// jepsenFile writes an EDN history to a file of its own.
func jepsenFile(t *testing.T, edn string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "history.edn")
	require.NoError(t, os.WriteFile(path, []byte(edn), 0o644))
	return path
}

// judgeJepsen reads an EDN history and checks it as a register.
func judgeJepsen(t *testing.T, edn string) Linearizability {
	t.Helper()
	path := jepsenFile(t, edn)
	events, err := ReadJepsen(path)
	require.NoError(t, err)
	h, err := NewHistory(path, "register", events)
	require.NoError(t, err)
	return CheckLinearizable(h, 10*time.Second)
}

func TestJepsenHistoriesAreJudgedAsKnossosJudgesThem(t *testing.T) {
	for _, tc := range []struct {
		name string
		edn  string
		want Verdict
		keys []string // failing keys, when invalid
	}{
		{"a write and a read of it", `[{:process 0, :type :invoke, :f :write, :value 1}
 {:process 0, :type :ok, :f :write, :value 1}
 {:process 1, :type :invoke, :f :read, :value nil}
 {:process 1, :type :ok, :f :read, :value 1}]`, Valid, nil},
		{"a stale read", `[{:process 0, :type :invoke, :f :write, :value 1}
 {:process 0, :type :ok, :f :write, :value 1}
 {:process 0, :type :invoke, :f :write, :value 2}
 {:process 0, :type :ok, :f :write, :value 2}
 {:process 1, :type :invoke, :f :read, :value nil}
 {:process 1, :type :ok, :f :read, :value 1}]`, Invalid, []string{""}},
		{"a :fail did not take effect: a failed write is never read", `[{:process 0, :type :invoke, :f :write, :value 1}
 {:process 0, :type :ok, :f :write, :value 1}
 {:process 1, :type :invoke, :f :write, :value 2}
 {:process 1, :type :fail, :f :write, :value 2}
 {:process 2, :type :invoke, :f :read, :value nil}
 {:process 2, :type :ok, :f :read, :value 2}]`, Invalid, []string{""}},
		{"a :fail cas is no evidence of the value (knossos drops failed operations)", `[{:process 0, :type :invoke, :f :write, :value 1}
 {:process 0, :type :ok, :f :write, :value 1}
 {:process 1, :type :invoke, :f :cas, :value [1 2]}
 {:process 1, :type :fail, :f :cas, :value [1 2]}]`, Valid, nil},
		{"an :info write may have taken effect", `[{:process 0, :type :invoke, :f :write, :value 1}
 {:process 0, :type :ok, :f :write, :value 1}
 {:process 1, :type :invoke, :f :write, :value 2}
 {:process 1, :type :info, :f :write, :value 2}
 {:process 2, :type :invoke, :f :read, :value nil}
 {:process 2, :type :ok, :f :read, :value 2}]`, Valid, nil},
		{"a read's invocation value is no part of it", `[{:process 3, :type :invoke, :f :read, :value 4}
 {:process 3, :type :ok, :f :read, :value nil}]`, Valid, nil},
		{"nemesis events are kept aside", `[{:process 0, :type :invoke, :f :write, :value 3}
 {:process :nemesis, :type :info, :f :start, :value "Cut off [:n1]"}
 {:process 0, :type :ok, :f :write, :value 3}
 {:process :nemesis, :type :info, :f :stop, :value nil}
 {:process 1, :type :invoke, :f :read, :value nil}
 {:process 1, :type :ok, :f :read, :value 3}]`, Valid, nil},
		{"an independent test's keys are judged apart", `[{:process 0, :type :invoke, :f :write, :value [a 1]}
 {:process 0, :type :ok, :f :write, :value [a 1]}
 {:process 1, :type :invoke, :f :write, :value [b 2]}
 {:process 1, :type :ok, :f :write, :value [b 2]}
 {:process 2, :type :invoke, :f :cas, :value [b [2 5]]}
 {:process 2, :type :ok, :f :cas, :value [b [2 5]]}
 {:process 3, :type :invoke, :f :read, :value [a nil]}
 {:process 3, :type :ok, :f :read, :value [a 1]}
 {:process 4, :type :invoke, :f :read, :value [b nil]}
 {:process 4, :type :ok, :f :read, :value [b 2]}]`, Invalid, []string{"b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := judgeJepsen(t, tc.edn)
			require.Equal(t, tc.want, r.Verdict, r.Detail)
			if tc.want == Invalid {
				require.Equal(t, tc.keys, r.FailingKeys)
			}
		})
	}
}

func TestAJepsenHistoryReadsTheSameAsAVectorAListOrLooseMaps(t *testing.T) {
	body := `{:process 0, :type :invoke, :f :write, :value 1}
 {:process 0, :type :ok, :f :write, :value 1}
 {:process 1, :type :invoke, :f :read, :value nil}
 {:process 1, :type :ok, :f :read, :value 1}`
	want, err := ReadJepsen(jepsenFile(t, "["+body+"]"))
	require.NoError(t, err)
	require.Len(t, want, 4)
	for _, edn := range []string{"(" + body + ")", "; history\n" + body + "\n"} {
		got, err := ReadJepsen(jepsenFile(t, edn))
		require.NoError(t, err)
		for i := range want {
			want[i].Line, got[i].Line = 0, 0
		}
		require.Equal(t, want, got)
	}
}

func TestJepsenInputsItCannotReadAreRefusedNamingTheEventAndField(t *testing.T) {
	ok := `{:process 0, :type :invoke, :f :write, :value 1} `
	for _, tc := range []struct {
		name, edn, field string
		line             int
	}{
		{"an unknown :f", ok + `{:process 0, :type :ok, :f :add, :value 1}`, ":f", 2},
		{"a :type that is not one of the four", ok + `{:process 0, :type :done, :f :write, :value 1}`, ":type", 2},
		{"no :type", `{:process 0, :f :write, :value 1}`, ":type", 1},
		{"a process that is a string", `{:process "p0", :type :invoke, :f :write, :value 1}`, ":process", 1},
		{"a negative process", `{:process -1, :type :invoke, :f :write, :value 1}`, ":process", 1},
		{"a value that is a float", `{:process 0, :type :invoke, :f :write, :value 1.5}`, ":value", 1},
		{"an independent test whose value stops being [key value]", `{:process 0, :type :invoke, :f :write, :value [a 1]} {:process 0, :type :ok, :f :write, :value 1}`, ":value", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadJepsen(jepsenFile(t, tc.edn))
			var pe *history.ParseError
			require.True(t, errors.As(err, &pe), "want a ParseError, got %v", err)
			require.Equal(t, tc.field, pe.Field)
			require.Equal(t, tc.line, pe.Line)
		})
	}
	_, err := ReadJepsen(jepsenFile(t, ok+`({:process 1, :type :invoke, :f :read, :value nil})`))
	require.ErrorContains(t, err, "a vector after events", "a history is one vector or list, or maps one after another")
	_, err = ReadJepsen(jepsenFile(t, `{:process 0, :type :invoke, :f :write, :value 1} {:process`))
	require.ErrorContains(t, err, "event 2: not EDN")
	_, err = ReadJepsen(filepath.Join(t.TempDir(), "missing.edn"))
	require.Error(t, err)
}
