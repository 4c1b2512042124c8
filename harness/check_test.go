package harness

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// gcSettings reads the collector's percent and memory limit.
func gcSettings() (int, int64) {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p, debug.SetMemoryLimit(-1) // a negative limit only reads it
}

func TestOverlappingLargeChecksBoundTheHeapTogetherAndTheLastRestoresTheDefaults(t *testing.T) {
	large := filepath.Join(t.TempDir(), "history.jsonl")
	f, err := os.Create(large)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(gcFrom*2)) // sparse: its size is what counts
	require.NoError(t, f.Close())
	percent, limit := gcSettings()

	firstLoaded, first := collectLess(large)
	p, l := gcSettings()
	require.Equal(t, -1, p, "no collection while a history loads")
	require.Equal(t, int64(gcHeadroom*gcFrom*2), l)
	secondLoaded, second := collectLess(large)
	_, l = gcSettings()
	require.Equal(t, int64(2*gcHeadroom*gcFrom*2), l, "overlapping checks add their bounds")
	firstLoaded()
	p, _ = gcSettings()
	require.Equal(t, -1, p, "the other check still loads")
	secondLoaded()
	secondLoaded()
	p, _ = gcSettings()
	require.Equal(t, gcChecking, p, "both loaded: their checkers' garbage is collected")
	first()
	p, l = gcSettings()
	require.Equal(t, gcChecking, p, "a check still running keeps its settings")
	require.Equal(t, int64(gcHeadroom*gcFrom*2), l)
	second()
	p, l = gcSettings()
	require.Equal(t, percent, p)
	require.Equal(t, limit, l)

	_, stopsLoading := collectLess(large)
	stopsLoading() // a check that fails while loading restores as well
	p, l = gcSettings()
	require.Equal(t, percent, p)
	require.Equal(t, limit, l)

	small := filepath.Join(t.TempDir(), "small.jsonl")
	require.NoError(t, os.WriteFile(small, []byte("{}\n"), 0o644))
	smallLoaded, smallDone := collectLess(small)
	p, l = gcSettings()
	require.Equal(t, percent, p, "a small history keeps the defaults")
	require.Equal(t, limit, l)
	smallLoaded()
	smallDone()
	p, l = gcSettings()
	require.Equal(t, percent, p)
	require.Equal(t, limit, l)
}
