package nemesis

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/nemesis/fault"
	"github.com/paxtest/paxtest/nemesis/network"
	"github.com/paxtest/paxtest/target/api"
)

// fakeCluster is a Control and FaultLayer whose statuses the test sets.
type fakeCluster struct {
	mu     sync.Mutex
	ids    []int
	status map[int]api.Status
	down   map[int]bool
	// failRestart: these nodes exit as they start
	failRestart map[int]bool
	paused      map[int]bool
	blocked     [][2]int
	delayed     [][2]int
	actions     []string
	takes       map[int]bool // nodes that accept one more entry at each look at their status
	chooses     map[int]bool // and see it chosen at once
}

func newFake(n, leader int) *fakeCluster {
	f := &fakeCluster{status: map[int]api.Status{}, down: map[int]bool{}, paused: map[int]bool{}}
	for id := 1; id <= n; id++ {
		f.ids = append(f.ids, id)
		f.status[id] = api.Status{ID: uint64(id), Role: "follower"}
	}
	f.setLeader(leader)
	return f
}

func (f *fakeCluster) setLeader(id int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, st := range f.status {
		st.Role = "follower"
		if k == id {
			st.Role = "leader"
		}
		f.status[k] = st
	}
}

func (f *fakeCluster) act(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, s)
}

func (f *fakeCluster) IDs() []int { return f.ids }
func (f *fakeCluster) Leader(context.Context) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range f.ids {
		if f.status[id].Role == "leader" && !f.down[id] {
			return id
		}
	}
	return 0
}
func (f *fakeCluster) Status(_ context.Context, id int) (api.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.status[id]
	if f.takes[id] {
		next := st
		next.MaxSlot++
		if f.chooses[id] {
			next.CommitPoint = next.MaxSlot
		}
		f.status[id] = next
	}
	return st, nil
}
func (f *fakeCluster) IsDown(id int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down[id]
}
func (f *fakeCluster) Kill(id int) error {
	f.act("kill n" + itoa(id))
	f.mu.Lock()
	f.down[id] = true
	f.mu.Unlock()
	return nil
}
func (f *fakeCluster) Restart(_ context.Context, id int) error {
	f.act("restart n" + itoa(id))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failRestart[id] {
		return startFailure(fmt.Sprintf("node n%d exited while starting; its log says:\nreplayed\ncorrupt record at offset 75", id))
	}
	f.down[id] = false
	return nil
}

// startFailure is a node's failure to start, as the cluster reports it.
type startFailure string

func (e startFailure) Error() string     { return string(e) }
func (e startFailure) DidNotStart() bool { return true }

func (f *fakeCluster) Pause(id int) error  { f.act("pause n" + itoa(id)); return nil }
func (f *fakeCluster) Resume(id int) error { f.act("resume n" + itoa(id)); return nil }
func (f *fakeCluster) Host(int) string     { return "127.0.0.1" }
func (f *fakeCluster) Setup(map[int]string) error {
	return nil
}
func (f *fakeCluster) Dial(int, int) string { return "" }
func (f *fakeCluster) Block(links [][2]int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocked = links
	return nil
}
func (f *fakeCluster) Delay(links [][2]int, _ network.Shape) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delayed = links
	return nil
}
func (f *fakeCluster) Close() error { return nil }

func itoa(i int) string { return string(rune('0' + i)) }

// execFor returns an executor on f (acting through c, f itself unless a
// wrapper is given) and the ops it emits.
func execFor(f *fakeCluster, c Control) (*Exec, *[]fault.Op) {
	if c == nil {
		c = f
	}
	var ops []fault.Op
	cfg := ExecConfig{Cluster: c, Net: f, Delays: f, Rand: rand.New(rand.NewSource(1)), Now: func() int64 { return 0 }}
	if m, ok := c.(MemberControl); ok {
		cfg.Members = m
	}
	x, err := NewExec(cfg)
	if err != nil {
		panic(err)
	}
	x.Emit = func(op fault.Op, _ error) { ops = append(ops, op) }
	return x, &ops
}

// notes are the texts of the notes among ops.
func notes(ops []fault.Op) []string {
	var out []string
	for _, o := range ops {
		if o.F == fault.Note {
			out = append(out, o.Note)
		}
	}
	return out
}

// reachable: the unordered pairs that can talk both ways.
func cutPairs(links [][2]int) []string {
	seen := map[string]bool{}
	for _, l := range links {
		a, b := min(l[0], l[1]), max(l[0], l[1])
		seen["n"+itoa(a)+"-n"+itoa(b)] = true
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestEveryBuiltinScheduleParses(t *testing.T) {
	entries, err := builtinScripts.ReadDir("scripts")
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".pax")
		s, err := Builtin(name)
		require.NoError(t, err, name)
		require.NotEmpty(t, s.Ops, name)
	}
	for label, names := range scripted {
		_, err := FromScripts(label, names...)
		require.NoError(t, err, label)
	}
}

func TestParseScriptNamesTheBadLineAndWhatToWrite(t *testing.T) {
	for _, tc := range []struct {
		text, want string
	}{
		{"leader L\nexplode n1\n", `line 2 (explode n1): unknown step "explode"`},
		{"leader\n", "line 1 (leader): want: leader ROLE"},
		{"# comment\npick n3\n", `line 2 (pick n3): "n3" is not a role name`},
		{"partition L1 F1\n", "want: partition SET | SET"},
		{"partition L1 | | F1\n", "an empty group"},
		{"sleep soon\n", `line 1 (sleep soon): time: invalid duration "soon"`},
		{"await-leader L2 from A B\n", "want: await-leader ROLE among SET"},
		{"await-accepted L1 X\n", "want: await-accepted ROLE [new | at SLOT] as SLOT"},
		{"await-accepted L1 at X Y\n", "want: await-accepted ROLE [new | at SLOT] as SLOT"},
		{"await-accepted L1 new X\n", "want: await-accepted ROLE [new | at SLOT] as SLOT"},
		{"await-caught-up\n", "want: await-caught-up SET"},
		{"delay L1 A 5ms\n", "want: delay SET -> SET DURATION"},
		{"delay L1 -> A 5ms jitter soon\n", `jitter "soon": a duration`},
		{"delay L1 -> A 5ms rate fast\n", `rate "fast": a positive number of bytes a second`},
		{"delay L1 -> A 5ms rate -4KB\n", `rate "-4KB"`},
		{"reset L1\n", "want: reset SET -> SET"},
		{"corrupt L1 melt\n", "want: corrupt ROLE bitflip|truncate [FILE [OFFSET]]"},
		{"corrupt L1 bitflip wal.log -3\n", `offset "-3": a byte of the file, from 0`},
		{"repair L1 L2\n", "want: repair ROLE"},
		{"option fast\n", "the options are bound-clients and min-nodes N"},
		{"option min-nodes none\n", `min-nodes "none": a positive number of nodes`},
		{"require-members three\n", "want: require-members COUNT"},
		{"spare\n", "want: spare ROLE"},
		{"spare members\n", `"members" is not a role name`},
		{"members swap A B\n", "want: members add ROLE | members remove ROLE | members replace ROLE with ROLE"},
		{"members replace A B\n", "want: members add ROLE"},
		{"retire\n", "want: retire ROLE [within DURATION]"},
		{"# nothing\n\n", "no steps"},
	} {
		_, err := ParseScript("t", strings.NewReader(tc.text))
		require.ErrorContains(t, err, tc.want, tc.text)
	}
}

func TestHarshLinkStepsParseIntoOneDelayOrResetOp(t *testing.T) {
	for _, tc := range []struct {
		text string
		want fault.Op
	}{
		{"delay L1 -> A B 150ms", fault.Op{F: fault.Delay, Ms: 150}},
		{"delay L1 -> A B 150ms jitter 40ms", fault.Op{F: fault.Delay, Ms: 150, JitterMs: 40}},
		{"delay L1 -> A B 150ms rate 64KB jitter 1s", fault.Op{F: fault.Delay, Ms: 150, JitterMs: 1000, Rate: 64 << 10}},
		{"delay L1 -> A B 0s rate 2MB", fault.Op{F: fault.Delay, Rate: 2 << 20}},
		{"reset L1 -> A B", fault.Op{F: fault.Reset}},
	} {
		s, err := ParseScript("t", strings.NewReader("leader L1\npick A B\n"+tc.text+"\n"))
		require.NoError(t, err, tc.text)
		op := s.Ops[len(s.Ops)-1]
		require.Equal(t, []string{"L1"}, op.Sel.Set, tc.text)
		require.Equal(t, []string{"A", "B"}, op.Sel.To, tc.text)
		op.Sel = nil
		require.Equal(t, tc.want, op, tc.text)
	}
}

func TestAResetNeedsAFaultLayerThatCanResetConnections(t *testing.T) {
	f := newFake(3, 1)
	x, _ := execFor(f, nil)
	_, err := x.Perform(context.Background(), fault.Op{F: fault.Reset, Links: [][2]int{{1, 2}}})
	require.ErrorContains(t, err, "--net proxy")
}

func TestReadScriptNamesTheFile(t *testing.T) {
	_, err := ReadScript(filepath.Join(t.TempDir(), "missing.pax"))
	require.ErrorContains(t, err, "missing.pax")
	p := filepath.Join(t.TempDir(), "bad.pax")
	require.NoError(t, os.WriteFile(p, []byte("leader L\nkill\n"), 0o644))
	_, err = ReadScript(p)
	require.ErrorContains(t, err, "bad.pax: line 2")
}

func TestScriptRolesFollowTheLiveLeader(t *testing.T) {
	for _, leader := range []int{1, 3, 5} {
		f := newFake(5, leader)
		x, ops := execFor(f, nil)
		s, err := ParseScript("t", strings.NewReader(`
leader L1
pick F1
partition L1 F1 | rest
note stage1: {L1} with {F1}
kill L1
`))
		require.NoError(t, err)
		sd := &Scripted{Label: "t", Scripts: []*Script{s}}
		require.NoError(t, sd.Start(context.Background(), x))
		require.NotContains(t, strings.Join(notes(*ops), ";"), "abandoned")
		require.Equal(t, []string{"kill n" + itoa(leader)}, f.actions)
		// the leader and F1 are cut from the other three: 2*3 pairs
		require.Len(t, cutPairs(f.blocked), 6)
		withLeader := 0
		for _, p := range cutPairs(f.blocked) {
			if strings.Contains(p, "n"+itoa(leader)) {
				withLeader++
			}
		}
		require.Equal(t, 3, withLeader, "the leader is cut from the three nodes outside its group, and from no one else")
		require.Len(t, notes(*ops), 2, "the stage and the attempt's roles")
		require.Contains(t, notes(*ops)[0], "stage1: n"+itoa(leader)+" with n")
		// stopping it opens every link and restarts the killed leader
		require.NoError(t, sd.Stop(context.Background(), x))
		require.Empty(t, f.blocked)
		require.Equal(t, "restart n"+itoa(leader), f.actions[len(f.actions)-1])
	}
}

func TestPartitionRestIsEveryNodeInNoOtherGroup(t *testing.T) {
	f := newFake(5, 2)
	x, _ := execFor(f, nil)
	s, err := ParseScript("t", strings.NewReader("leader L\npartition L | n4 | rest\ncut n1 | n3\n"))
	require.NoError(t, err)
	require.NoError(t, (&Scripted{Label: "t", Scripts: []*Script{s}}).Start(context.Background(), x))
	// n2 alone, n4 alone, {n1 n3 n5} together — then n1-n3 cut as well
	require.Equal(t, []string{"n1-n2", "n1-n3", "n1-n4", "n2-n3", "n2-n4", "n2-n5", "n3-n4", "n4-n5"}, cutPairs(f.blocked))
}

func TestAwaitLeaderWaitsForTheBoundRoleNotAStaleLeader(t *testing.T) {
	f := newFake(3, 2) // n2 still believes it leads
	x, ops := execFor(f, nil)
	s, err := ParseScript("t", strings.NewReader("pick L from n1\nawait-leader L among n1 n2 within 2s\n"))
	require.NoError(t, err)
	go func() {
		time.Sleep(50 * time.Millisecond)
		f.setLeader(1)
	}()
	require.NoError(t, (&Scripted{Label: "t", Scripts: []*Script{s}}).Start(context.Background(), x))
	require.Equal(t, []string{"t: L=n1"}, notes(*ops))
}

func TestAWaitThatTimesOutAbandonsTheAttempt(t *testing.T) {
	f := newFake(3, 1) // n1 leads with nothing unchosen
	x, ops := execFor(f, nil)
	s, err := ParseScript("t", strings.NewReader("leader L\npartition L | rest\nawait-accepted L as X within 20ms\nkill L\n"))
	require.NoError(t, err)
	require.NoError(t, (&Scripted{Label: "t", Scripts: []*Script{s}}).Start(context.Background(), x))
	require.Equal(t, "t: line 3 (await-accepted L as X within 20ms): attempt abandoned: n1 holds no unchosen slot", notes(*ops)[1])
	require.Empty(t, f.actions, "the steps after the failed wait did not run")
}

func TestAwaitCommitWaitsForTheSlotBoundByAwaitAccepted(t *testing.T) {
	f := newFake(3, 1)
	f.status[1] = api.Status{Role: "leader", CommitPoint: 10, MaxSlot: 14}
	x, ops := execFor(f, nil)
	s, err := ParseScript("t", strings.NewReader("leader L\nawait-accepted L as X\nawait-commit L X within 2s\nkill L\n"))
	require.NoError(t, err)
	go func() {
		time.Sleep(30 * time.Millisecond)
		f.mu.Lock()
		f.status[1] = api.Status{Role: "leader", CommitPoint: 11, MaxSlot: 14}
		f.mu.Unlock()
	}()
	require.NoError(t, (&Scripted{Label: "t", Scripts: []*Script{s}}).Start(context.Background(), x))
	require.Contains(t, notes(*ops)[0], "X=slot 11")
	require.Equal(t, []string{"kill n1"}, f.actions)
}

func TestPollUntilStopsWhenDoneAtTheDeadlineOrWhenTheContextEnds(t *testing.T) {
	calls := 0
	require.True(t, pollUntil(context.Background(), time.Second, time.Millisecond, func() bool { calls++; return calls == 3 }))
	require.Equal(t, 3, calls)
	calls = 0
	require.False(t, pollUntil(context.Background(), 20*time.Millisecond, 5*time.Millisecond, func() bool { calls++; return false }))
	require.Greater(t, calls, 1, "it polled more than once before the deadline")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls = 0
	require.False(t, pollUntil(ctx, time.Hour, time.Hour, func() bool { calls++; return false }))
	require.Equal(t, 1, calls, "an ended context stops it after one look")
}

func TestAwaitAcceptedAtWaitsInTheSlotBoundBeforeAndAbandonsWhereItWasChosen(t *testing.T) {
	for _, tc := range []struct {
		name string
		n2   api.Status // X is slot 11 (n1: commit point 10, entries up to 14)
		want string     // the last note
		kill bool
	}{
		{"an entry in X's slot binds Y to it", api.Status{CommitPoint: 8, MaxSlot: 11}, "Y=slot 11", true},
		{"entries short of X's slot abandon", api.Status{CommitPoint: 8, MaxSlot: 10}, "attempt abandoned: n2 accepted nothing in slot 11 (its entries end at slot 10)", false},
		{"X's slot seen chosen abandons", api.Status{CommitPoint: 11, MaxSlot: 12}, "attempt abandoned: n2 already saw slot 11 chosen", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(3, 1)
			f.status[1] = api.Status{Role: "leader", CommitPoint: 10, MaxSlot: 14}
			tc.n2.Role = "follower"
			f.status[2] = tc.n2
			x, ops := execFor(f, nil)
			s, err := ParseScript("t", strings.NewReader("leader L\nawait-accepted L as X\npick M from n2\nawait-accepted M at X as Y within 20ms\nnote {Y}\nkill M\n"))
			require.NoError(t, err)
			require.NoError(t, (&Scripted{Label: "t", Scripts: []*Script{s}}).Start(context.Background(), x))
			got := notes(*ops)
			require.Contains(t, strings.Join(got, "\n"), tc.want)
			require.Equal(t, tc.kill, len(f.actions) == 1, "the steps after the wait ran only when it bound Y: %v", f.actions)
		})
	}
}

func TestAwaitAcceptedNewBindsTheFirstEntryTheNodeAcceptedAfterTheWaitBegan(t *testing.T) {
	for _, tc := range []struct {
		name  string
		takes bool   // n1 accepts new entries while the script waits
		chose bool   // and sees each chosen at once
		want  string // the last note
	}{
		{"entries held when the wait began are passed over", true, false, "X=slot 15"},
		{"no new entry abandons", false, false, "attempt abandoned: n1 accepted no new entry after slot 14"},
		{"a new entry seen chosen abandons", true, true, "attempt abandoned: n1 already saw its new slot 15 chosen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(3, 1)
			f.status[1] = api.Status{Role: "leader", CommitPoint: 10, MaxSlot: 14}
			f.takes, f.chooses = map[int]bool{1: tc.takes}, map[int]bool{1: tc.chose}
			x, ops := execFor(f, nil)
			s, err := ParseScript("t", strings.NewReader("pick L from n1\nawait-accepted L new as X within 50ms\nnote {X}\n"))
			require.NoError(t, err)
			require.NoError(t, (&Scripted{Label: "t", Scripts: []*Script{s}}).Start(context.Background(), x))
			got := notes(*ops)
			require.Contains(t, got[len(got)-1], tc.want)
		})
	}
}

func TestAwaitCaughtUpWaitsUntilEveryNodeReachesTheFurthestCommitPoint(t *testing.T) {
	for _, tc := range []struct {
		name    string
		catches bool     // n2 chooses one more slot at each look
		notes   []string // the roles note (none bound), then why it was abandoned
		actions []string
	}{
		{"a node that catches up lets the script go on", true, []string{"t: "}, []string{"kill n1"}},
		{"a node left behind abandons the attempt", false,
			[]string{"t: ", "t: line 1 (await-caught-up all within 50ms): attempt abandoned: n2's commit point (5) did not reach slot 8"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(3, 1)
			f.status[1] = api.Status{Role: "leader", CommitPoint: 8, MaxSlot: 9}
			f.status[2] = api.Status{Role: "follower", CommitPoint: 5, MaxSlot: 5}
			f.status[3] = api.Status{Role: "follower", CommitPoint: 8, MaxSlot: 9}
			f.takes, f.chooses = map[int]bool{2: tc.catches}, map[int]bool{2: tc.catches}
			x, ops := execFor(f, nil)
			s, err := ParseScript("t", strings.NewReader("await-caught-up all within 50ms\nkill n1\n"))
			require.NoError(t, err)
			require.NoError(t, (&Scripted{Label: "t", Scripts: []*Script{s}}).Start(context.Background(), x))
			require.Equal(t, tc.notes, notes(*ops))
			require.Equal(t, tc.actions, f.actions)
		})
	}
}
