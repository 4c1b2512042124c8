package nemesis

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRemapMovesTheRecordedLeadersRoleOntoTheCurrentLeader(t *testing.T) {
	kill := Step{Op: "kill", Node: 2, Leader: 2}
	require.Equal(t, 4, remap(kill, 2, 4).Node, "kill the leader stays kill the leader")
	iso := Step{Op: "block", Links: [][2]int{{2, 1}, {1, 2}, {4, 3}}, Leader: 2}
	require.Equal(t, [][2]int{{4, 1}, {1, 4}, {2, 3}}, remap(iso, 2, 4).Links, "ids swap both ways")
	require.Equal(t, iso, remap(iso, 2, 2), "same leader: unchanged")
	require.Equal(t, iso, remap(iso, 2, 0), "no leader now: unchanged")
	heal := Step{Op: "block", Leader: 3}
	require.Nil(t, remap(heal, 3, 1).Links, "a heal stays a heal")
}

func TestReadScheduleNamesTheBadLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), ScheduleFile)
	require.NoError(t, os.WriteFile(path, []byte(`{"time":1,"op":"kill","node":2,"leader":2}`+"\n"+`{"time":2,"op":"explode"}`+"\n"), 0o644))
	_, err := ReadSchedule(path)
	require.ErrorContains(t, err, "line 2")
	require.ErrorContains(t, err, `"explode"`)
}
