package bugs

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
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

var update = flag.Bool("update", false, "rewrite the README's table of switches from All")

const (
	tableStart = "<!-- switches: written from target/bugs (go test ./target/bugs -update) -->\n"
	tableEnd   = "<!-- end of switches -->\n"
)

// TestTheReadmesTableOfSwitchesIsTheTableInThisPackage: the README shows
// exactly what All says, nemeses and cluster sizes included, which are
// what bench detect, the CI gate and soak run.
func TestTheReadmesTableOfSwitchesIsTheTableInThisPackage(t *testing.T) {
	path := filepath.Join("..", "..", "README.md")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	readme := string(b)
	i, j := strings.Index(readme, tableStart), strings.Index(readme, tableEnd)
	require.True(t, i >= 0 && j > i, "README.md has no table of switches between %q and %q", tableStart, tableEnd)
	want := tableStart + Table() + tableEnd
	if *update {
		readme = readme[:i] + want + readme[j+len(tableEnd):]
		require.NoError(t, os.WriteFile(path, []byte(readme), 0o644))
		return
	}
	require.Equal(t, want, readme[i:j+len(tableEnd)], "the README's table drifted from target/bugs: go test ./target/bugs -update")
	for _, sw := range All() {
		require.NotEmpty(t, sw.Nemeses, sw.Name)
		require.Contains(t, []int{3, 5}, sw.Nodes, sw.Name)
	}
}
