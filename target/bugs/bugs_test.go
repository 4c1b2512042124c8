package bugs

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEverySwitchParsesToItselfAlone(t *testing.T) {
	for _, sw := range All() {
		s, err := Parse(sw.Name)
		require.NoError(t, err)
		require.Equal(t, []string{sw.Name}, s.Enabled())
		require.NotEmpty(t, sw.Rule)
		require.NotEmpty(t, sw.Breaks)
		require.NotEmpty(t, sw.Symptom)
		require.NotEmpty(t, sw.Schedule)
	}
}

func TestParseAcceptsCommaListsAndNone(t *testing.T) {
	s, err := Parse("no-fsync, stale-read", "none", "")
	require.NoError(t, err)
	require.Equal(t, "no-fsync,stale-read", s.String())
	z, err := Parse()
	require.NoError(t, err)
	require.Equal(t, "none", z.String())
}

func TestUnknownSwitchNamesTheInputAndTheAcceptedOnes(t *testing.T) {
	_, err := Parse("reconfirm-old")
	require.ErrorContains(t, err, `"reconfirm-old"`)
	require.ErrorContains(t, err, "reconfirm-old-ballot")
}
