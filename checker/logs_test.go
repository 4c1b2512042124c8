package checker

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLogSamplesReadAWholeLastLineAndLeaveOutATornOne(t *testing.T) {
	const a = `{"time":1,"node":"n1","entries":[{"index":1,"ballot":"1.1","digest":"d1","kind":"command","value":"x"}]}`
	const b = `{"time":2,"node":"n2","entries":[{"index":1,"ballot":"1.1","digest":"d1","kind":"command"}]}`
	for _, tc := range []struct {
		name    string
		content string
		samples int
		err     string
	}{
		{"every line ends", a + "\n" + b + "\n", 2, ""},
		{"a whole last line without its newline is read", a + "\n" + b, 2, ""},
		{"a torn last line is left out", a + "\n" + b[:30], 1, ""},
		{"a damaged line before the last is refused with its line", a + "\n" + b[:30] + "\n" + a + "\n", 0, "line 2"},
		{"empty", "", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "logs.jsonl")
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o644))
			got, err := ReadLogs(path)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Len(t, got, tc.samples)
			if tc.samples == 2 {
				require.Equal(t, "x", got[1].Entries[0].Value, "a value written once is filled in by its digest")
			}
		})
	}
	_, err := ReadLogs(t.TempDir()) // a directory: reading fails, and says so
	require.Error(t, err)
}
