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

	first := collectLess(large)
	p, l := gcSettings()
	require.Equal(t, -1, p)
	require.Equal(t, int64(gcHeadroom*gcFrom*2), l)
	second := collectLess(large)
	_, l = gcSettings()
	require.Equal(t, int64(2*gcHeadroom*gcFrom*2), l, "overlapping checks add their bounds")
	first()
	p, l = gcSettings()
	require.Equal(t, -1, p, "a check still running keeps its bound")
	require.Equal(t, int64(gcHeadroom*gcFrom*2), l)
	second()
	p, l = gcSettings()
	require.Equal(t, percent, p)
	require.Equal(t, limit, l)

	small := filepath.Join(t.TempDir(), "small.jsonl")
	require.NoError(t, os.WriteFile(small, []byte("{}\n"), 0o644))
	collectLess(small)()
	p, l = gcSettings()
	require.Equal(t, percent, p, "a small history keeps the defaults")
	require.Equal(t, limit, l)
}
