package nemesis

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReadScheduleNamesTheBadLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), ScheduleFile)
	require.NoError(t, os.WriteFile(path, []byte(`{"time":1,"op":"kill","node":2,"leader":2}`+"\n"+`{"time":2,"op":"explode"}`+"\n"), 0o644))
	_, err := ReadSchedule(path)
	require.ErrorContains(t, err, "line 2")
	require.ErrorContains(t, err, `"explode"`)
}
