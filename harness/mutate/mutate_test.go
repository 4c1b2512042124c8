package mutate

import (
	"go/format"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const sample = `package p

type cfg struct{ Bugs struct{ Skip bool } }

type node struct {
	cfg   cfg
	n     int
	ok    bool
	sent  []int
}

func (x *node) send(v int) { x.sent = append(x.sent, v) }

func (x *node) step(a, b int) int {
	if a < b && x.ok {
		x.n++
	}
	x.send(a + 1)
	x.ok = true
	if x.cfg.Bugs.Skip {
		x.send(99)
	}
	skip := x.cfg.Bugs.Skip
	if skip {
		return 0
	}
	panic("never: " + "x")
}

func (x *node) String() string { return "node" }
`

// mutantsOf returns the sample's mutants, in site order.
func mutantsOf(t *testing.T) []Mutant {
	t.Helper()
	ms, err := FromSource("p/x.go", []byte(sample))
	require.NoError(t, err)
	return ms
}

func TestEachOperatorMakesTheOneSiteChangeItNames(t *testing.T) {
	want := map[string]string{ // id suffix (line:col:operator) -> the mutated line
		"15:5:negate-if": "if !(a < b && x.ok) {",
		"15:7:compare":   "if a <= b && x.ok {",
		"15:11:logic":    "if a < b || x.ok {",
		"16:6:incdec":    "x.n--",
		"16:3:remove":    "(removed)",
		"18:11:arith":    "x.send(a - 1)",
		"18:13:const+1":  "x.send(a + 2)",
		"18:13:const-1":  "x.send(a + 0)",
		"18:2:remove":    "(removed)",
		"19:9:bool":      "x.ok = false",
		"19:2:remove":    "(removed)",
		"12:30:remove":   "(removed)",
	}
	require.Len(t, mutantsOf(t), len(want), "every mutant is one of these")
	got := map[string]Mutant{}
	for _, m := range mutantsOf(t) {
		id := strings.TrimPrefix(m.ID, "p/x.go:")
		got[id] = m
	}
	for id, after := range want {
		m, ok := got[id]
		require.True(t, ok, "no mutant %s among %v", id, slices.Sorted(maps.Keys(got)))
		require.Equal(t, after, m.After, id)
		if strings.HasPrefix(id, "12:") {
			require.Equal(t, "send", m.Func, id)
		} else {
			require.Equal(t, "step", m.Func, id)
		}
		_, err := format.Source(m.Src)
		require.NoError(t, err, "mutant %s does not parse:\n%s", id, m.Src)
		require.NotEqual(t, sample, string(m.Src), id)
	}
}

func TestMutantsLeaveBugSwitchesLoggingAndStringMethodsAlone(t *testing.T) {
	for _, m := range mutantsOf(t) {
		require.NotEqual(t, "String", m.Func, m.ID)
		require.NotContains(t, m.Before, "Bugs", "a bug switch's own condition was mutated: %s", m.ID)
		require.NotContains(t, m.Before, "skip", "a variable set from a bug switch was mutated: %s", m.ID)
		require.NotContains(t, m.Before, "99", "a bug switch's dead branch was mutated: %s", m.ID)
		require.NotContains(t, m.Before, "panic", "a panic's message was mutated: %s", m.ID)
	}
}

func TestMutantIDsAreStableAndUnique(t *testing.T) {
	a, b := mutantsOf(t), mutantsOf(t)
	require.Equal(t, len(a), len(b))
	seen := map[string]bool{}
	for i := range a {
		require.Equal(t, a[i].ID, b[i].ID)
		require.False(t, seen[a[i].ID], "duplicate id %s", a[i].ID)
		seen[a[i].ID] = true
	}
}
