package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paxtest/paxtest/harness"
	"github.com/stretchr/testify/require"
)

// The test binary doubles as the paxtest binary: with PAXTEST_BE_MAIN=1 it
// runs main, so `run` launches real node processes (itself again).
func TestMain(m *testing.M) {
	if os.Getenv("PAXTEST_BE_MAIN") == "1" { // as main does
		code := run(os.Args[1:], os.Stdout, os.Stderr)
		harness.ReportPeakRSS()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

type result struct {
	code   int
	stdout string
	stderr string
}

func paxtest(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "PAXTEST_BE_MAIN=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{code, out.String(), errb.String()}
}

type results struct {
	Verdict   string `json:"verdict"`
	Anomalies []struct {
		Kind string `json:"kind"`
	} `json:"anomalies"`
	Ops struct {
		OK   int `json:"ok"`
		Info int `json:"info"`
	} `json:"ops"`
	OpsPerSec float64 `json:"ops_per_sec"`
	Nemesis   []struct {
		F      string `json:"f"`
		Detail string `json:"detail"`
	} `json:"nemesis_events"`
	Checkers map[string]struct {
		Verdict string `json:"verdict"`
	} `json:"checkers"`
}

// latest is the run directory store/latest points at.
func latest(t *testing.T, store string) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(filepath.Join(store, "latest"))
	require.NoError(t, err)
	return dir
}

func readResults(t *testing.T, dir string) results {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	require.NoError(t, err)
	var r results
	require.NoError(t, json.Unmarshal(b, &r))
	return r
}

// noProcessesUnder fails if any process's command line mentions dir.
func noProcessesUnder(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []string
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			b, err := os.ReadFile(p)
			if err == nil && bytes.Contains(b, []byte(dir)) {
				left = append(left, p+": "+strings.ReplaceAll(string(b), "\x00", " "))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes outlived the run:\n%s", strings.Join(left, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRunUnderFaultsIsValidAndKeepsTheRunDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run skipped in -short mode")
	}
	for _, tc := range []struct {
		name string
		args []string
		nem  string
	}{
		{"register under partitions", []string{"--nodes", "5", "--nemesis", "partition", "--workload", "register"}, "partition"},
		{"append under kill -9", []string{"--nodes", "3", "--nemesis", "kill", "--workload", "append"}, "kill"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := t.TempDir()
			args := append([]string{"run", "--time-limit", "8s", "--nemesis-interval", "1500ms", "--seed", "5", "--store", store}, tc.args...)
			r := paxtest(t, args...)
			require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			require.Contains(t, r.stdout, "verdict: valid")
			dir, err := filepath.EvalSymlinks(filepath.Join(store, "latest"))
			require.NoError(t, err)
			for _, f := range []string{"config.json", "history.jsonl", "results.json", "logs.jsonl", "nodes/n1.log", "nodes/n1/data/wal.log"} {
				require.FileExists(t, filepath.Join(dir, f))
			}
			res := readResults(t, dir)
			require.Equal(t, "valid", res.Verdict)
			require.Greater(t, res.Ops.OK, 200)
			require.Greater(t, res.OpsPerSec, 0.0)
			var faults int
			for _, e := range res.Nemesis {
				if e.F == tc.nem {
					faults++
				}
			}
			require.Greater(t, faults, 0, "the nemesis injected no %s", tc.nem)
			require.Equal(t, "valid", res.Checkers["log-agreement"].Verdict)
			noProcessesUnder(t, dir)
			// check re-derives the verdict from disk and leaves the history alone
			before, _ := os.ReadFile(filepath.Join(dir, "history.jsonl"))
			c := paxtest(t, "check", dir)
			require.Equal(t, 0, c.code, c.stderr)
			after, _ := os.ReadFile(filepath.Join(dir, "history.jsonl"))
			require.Equal(t, before, after)
		})
	}
}

func TestBadFlagValuesExit254NamingTheValue(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nemesis", "bogus"}, `"bogus"`},
		{[]string{"--partition", "triangle"}, `"triangle"`},
		{[]string{"--workload", "queue"}, `"queue"`},
		{[]string{"--net", "carrier-pigeon"}, `"carrier-pigeon"`},
		{[]string{"--bug", "off-by-one"}, `"off-by-one"`},
		{[]string{"--nodes", "0"}, "--nodes 0"},
		{[]string{"--time-limit", "soon"}, "soon"},
		{[]string{"--replay", "/nonexistent/run"}, "--replay: /nonexistent/run"},
		{[]string{"--hosts", "cloud"}, `"cloud"`},
		{[]string{"--hosts", "ssh"}, "--hosts ssh needs --host-file"},
		{[]string{"--hosts", "ssh", "--host-file", "/nonexistent/hosts.json"}, "--host-file /nonexistent/hosts.json"},
		{[]string{"--hosts", "netns", "--host-file", "h.json"}, "--host-file h.json is for --hosts ssh"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			store := t.TempDir()
			r := paxtest(t, append([]string{"run", "--store", store, "--time-limit", "1s"}, tc.args...)...)
			require.Equal(t, 254, r.code, r.stderr)
			require.Contains(t, r.stderr, tc.want)
		})
	}
}

func TestCheckOnAMissingOrCorruptHistoryExits254NamingTheFile(t *testing.T) {
	dir := t.TempDir()
	r := paxtest(t, "check", filepath.Join(dir, "nope"))
	require.Equal(t, 254, r.code)
	require.Contains(t, r.stderr, "nope")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"workload":"register","check_timeout":1000000000}`), 0o644))
	r = paxtest(t, "check", dir)
	require.Equal(t, 254, r.code)
	require.Contains(t, r.stderr, "history.jsonl")
	bad := `{"time":1,"process":0,"type":"invoke","f":"get","key":"k"}` + "\n" + `{"time":2,"process":0,"type":"okay","f":"get"}` + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "history.jsonl"), []byte(bad), 0o644))
	r = paxtest(t, "check", dir)
	require.Equal(t, 254, r.code)
	require.Contains(t, r.stderr, "history.jsonl line 2")
}

func TestCheckFormatJepsenExitsWithTheVerdictAndMeasuresNoRateFromPositions(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, edn string
		code      int
		verdict   string
	}{
		{"good", `[{:process 0, :type :invoke, :f :write, :value 1} {:process 0, :type :ok, :f :write, :value 1}
 {:process 1, :type :invoke, :f :read, :value nil} {:process 1, :type :ok, :f :read, :value 1}]`, 0, "valid"},
		{"bad", `[{:process 0, :type :invoke, :f :write, :value 1} {:process 0, :type :ok, :f :write, :value 1}
 {:process 1, :type :invoke, :f :read, :value nil} {:process 1, :type :ok, :f :read, :value 2}]`, 1, "invalid"},
		{"unreadable", `[{:process 0, :type :invoke, :f :add, :value 1}]`, 254, ""},
	} {
		file := filepath.Join(dir, tc.name+".edn")
		require.NoError(t, os.WriteFile(file, []byte(tc.edn), 0o644))
		r := paxtest(t, "check", "--format", "jepsen", "--store", filepath.Join(dir, "store"), file)
		require.Equal(t, tc.code, r.code, "%s: %s%s", tc.name, r.stdout, r.stderr)
		if tc.code == 254 {
			require.Contains(t, r.stderr, tc.name+".edn")
			require.Contains(t, r.stderr, ":f")
			continue
		}
		require.Contains(t, r.stdout, "no rate is measured")
		runs, err := filepath.Glob(filepath.Join(dir, "store", "jepsen-"+tc.name, "*"))
		require.NoError(t, err)
		require.Len(t, runs, 1)
		res := readResults(t, runs[0])
		require.Equal(t, tc.verdict, res.Verdict)
		require.Zero(t, res.OpsPerSec, "an import's times are positions, not seconds")
	}
}

// Ctrl-C half-way: the run stops, no node or proxy outlives it, and the
// history it leaves is checkable.
func TestInterruptLeavesNothingRunningAndACheckableHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run skipped in -short mode")
	}
	store := t.TempDir()
	cmd := exec.Command(os.Args[0], "run", "--nodes", "3", "--nemesis", "pause", "--nemesis-interval", "1s", "--time-limit", "60s", "--store", store)
	cmd.Env = append(os.Environ(), "PAXTEST_BE_MAIN=1")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	require.NoError(t, cmd.Start())
	// wait until operations are flowing
	deadline := time.Now().Add(20 * time.Second)
	for {
		dir, _ := filepath.EvalSymlinks(filepath.Join(store, "latest"))
		if st, err := os.Stat(filepath.Join(dir, "history.jsonl")); err == nil && st.Size() > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "no history after 20s: %s", errb.String())
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		requireVerdictExit(t, err, errb.String())
	case <-time.After(30 * time.Second):
		require.NoError(t, cmd.Process.Kill())
		t.Fatalf("run did not stop within 30s of SIGINT: %s", errb.String())
	}
	dir, err := filepath.EvalSymlinks(filepath.Join(store, "latest"))
	require.NoError(t, err)
	noProcessesUnder(t, dir)
	r := paxtest(t, "check", dir)
	require.Contains(t, []int{0, 1, 2}, r.code, "check gives a verdict: %s %s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "verdict:")
}

// With --net iptables (root), partitions are DROP rules in paxtest's chain;
// a run, interrupted or not, leaves no chain, no jump and no rule behind.
func TestIptablesRunsLeaveNoRulesBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for iptables (CI runs it as root)")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("needs the iptables command: apt-get install iptables (.ci/run installs it)")
	}
	noRules := func() {
		t.Helper()
		out, _ := exec.Command("iptables", "-w", "-S").CombinedOutput()
		require.NotContains(t, string(out), "PAXTEST", "iptables rules left behind:\n%s", out)
	}
	store := t.TempDir()
	r := paxtest(t, "run", "--net", "iptables", "--nodes", "3", "--nemesis", "partition", "--partition", "halves",
		"--nemesis-interval", "1s", "--time-limit", "6s", "--seed", "3", "--store", store)
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	dir, err := filepath.EvalSymlinks(filepath.Join(store, "latest"))
	require.NoError(t, err)
	res := readResults(t, dir)
	require.Equal(t, "valid", res.Verdict)
	noProcessesUnder(t, dir)
	noRules()

	// interrupted while a partition is in force
	cmd := exec.Command(os.Args[0], "run", "--net", "iptables", "--nodes", "3", "--nemesis", "partition",
		"--nemesis-interval", "500ms", "--time-limit", "60s", "--store", store)
	cmd.Env = append(os.Environ(), "PAXTEST_BE_MAIN=1")
	require.NoError(t, cmd.Start())
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := exec.Command("iptables", "-w", "-S", "PAXTEST").CombinedOutput()
		if strings.Contains(string(out), "DROP") {
			break
		}
		require.True(t, time.Now().Before(deadline), "no partition rule appeared within 20s")
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	requireVerdictExit(t, cmd.Wait(), "")
	noRules()
}

// The seeds' schedule against the live cluster: with reconfirm-old-ballot
// a chosen value is overwritten and the run is invalid with a
// committed-then-overwritten anomaly; the correct build stays valid.
func TestFigure8CatchesReconfirmOldBallotAndClearsTheCorrectBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run skipped in -short mode")
	}
	for _, tc := range []struct {
		name    string
		bug     []string
		code    int
		verdict string
	}{
		{"reconfirm-old-ballot", []string{"--bug", "reconfirm-old-ballot"}, 1, "invalid"},
		{"correct", nil, 0, "valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := t.TempDir()
			// 15 s leaves room for a second attempt when the first is
			// abandoned (a 10-s run missed on a loaded CI machine); a run with the bug
			// ends 2 s after the logs diverge
			args := append([]string{"run", "--nodes", "5", "--nemesis", "figure8", "--time-limit", "15s", "--seed", "1",
				"--stop-on-divergence", "--store", store}, tc.bug...)
			r := paxtest(t, args...)
			require.Equal(t, tc.code, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			dir, err := filepath.EvalSymlinks(filepath.Join(store, "latest"))
			require.NoError(t, err)
			res := readResults(t, dir)
			require.Equal(t, tc.verdict, res.Verdict)
			kinds := map[string]bool{}
			for _, a := range res.Anomalies {
				kinds[a.Kind] = true
			}
			require.Equal(t, tc.code == 1, kinds["committed-then-overwritten"], "anomalies: %v", kinds)
			if tc.code != 1 {
				return
			}
			// The recorded schedule replays step for step: every step runs, none
			// fails, and the replay's own recording has the same steps in order.
			// (Whether the replay fails too is measured, not asserted: it does
			// in most replays, not all; see the bug-finding issue's note.)
			// It is given store/latest, as the README does: the replay must
			// read the run latest pointed at, not itself.
			rs := paxtest(t, "run", "--replay", filepath.Join(store, "latest"), "--store", store)
			require.Contains(t, []int{0, 1}, rs.code, "replay:\n%s\n%s", rs.stdout, rs.stderr)
			replayDir, err := filepath.EvalSymlinks(filepath.Join(store, "latest"))
			require.NoError(t, err)
			b, err := os.ReadFile(filepath.Join(replayDir, "results.json"))
			require.NoError(t, err)
			var rr struct {
				Replay struct{ Steps, Executed, Errors int } `json:"replay"`
			}
			require.NoError(t, json.Unmarshal(b, &rr))
			require.Positive(t, rr.Replay.Steps)
			require.Equal(t, rr.Replay.Steps, rr.Replay.Executed, "every recorded step was replayed")
			require.Zero(t, rr.Replay.Errors)
			require.Equal(t, stepOps(t, dir), stepOps(t, replayDir), "the replay executed the recorded steps in order")
		})
	}
}

// stepOps lists the ops of a run's recorded schedule, in order.
func stepOps(t *testing.T, dir string) []string {
	var ops []string
	for _, s := range steps(t, dir) {
		ops = append(ops, s.F)
	}
	return ops
}

func stepSources(t *testing.T, dir string) []string {
	var srcs []string
	for _, s := range steps(t, dir) {
		srcs = append(srcs, s.Source)
	}
	return srcs
}

func steps(t *testing.T, dir string) []struct{ F, Source string } {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "schedule.jsonl"))
	require.NoError(t, err)
	var out []struct{ F, Source string }
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var s struct{ F, Source string }
		require.NoError(t, json.Unmarshal([]byte(line), &s))
		out = append(out, s)
	}
	return out
}

func TestABadScheduleFileExits254NamingTheFileAndLine(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pax")
	require.NoError(t, os.WriteFile(bad, []byte("leader L\npartition L rest\n"), 0o644))
	for _, tc := range []struct{ file, want string }{
		{filepath.Join(dir, "missing.pax"), "missing.pax"},
		{bad, "bad.pax: line 2 (partition L rest): want: partition SET | SET"},
	} {
		r := paxtest(t, "run", "--store", t.TempDir(), "--time-limit", "1s", "--nemesis-schedule", tc.file)
		require.Equal(t, 254, r.code, r.stderr)
		require.Contains(t, r.stderr, tc.want)
	}
}

// A user's schedule file runs as a nemesis: its roles are bound against
// the live cluster, its notes are history events, and the file is kept.
func TestAUserScheduleRunsAsANemesisAndIsKeptWithTheRun(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run skipped in -short mode")
	}
	file := filepath.Join(t.TempDir(), "cut-pair.pax")
	text := "# cut the leader and one follower off, briefly\nleader L\npick F\npartition L F | rest\nnote cut: {L} and {F} cut off\nsleep 1s\nheal\n"
	require.NoError(t, os.WriteFile(file, []byte(text), 0o644))
	store := t.TempDir()
	r := paxtest(t, "run", "--nodes", "5", "--nemesis", "none", "--nemesis-schedule", file, "--time-limit", "6s", "--seed", "3", "--store", store)
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	dir, err := filepath.EvalSymlinks(filepath.Join(store, "latest"))
	require.NoError(t, err)
	require.Contains(t, dir, "register-cut-pair")
	kept, err := os.ReadFile(filepath.Join(dir, "nemesis-schedule.pax"))
	require.NoError(t, err)
	require.Equal(t, text, string(kept))
	hist, err := os.ReadFile(filepath.Join(dir, "history.jsonl"))
	require.NoError(t, err)
	require.Regexp(t, `"f":"note".*"detail":"cut: n\d and n\d cut off"`, string(hist))
	res := readResults(t, dir)
	cuts := 0
	for _, e := range res.Nemesis {
		if e.F == "partition" && strings.HasPrefix(e.Detail, "cut ") {
			cuts++
		}
	}
	require.Positive(t, cuts, "the script's partition is a nemesis event")
	require.Contains(t, stepOps(t, dir), "partition", "the partition was recorded for replay")
}

func TestShrinkRefusesARunThatDidNotFail(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"nodes":3}`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "results.json"), []byte(`{"verdict":"valid"}`), 0o644))
	r := paxtest(t, "shrink", dir, "--store", t.TempDir())
	require.Equal(t, 254, r.code, r.stderr)
	require.Contains(t, r.stderr, "its verdict is valid")
	r = paxtest(t, "shrink", filepath.Join(dir, "nope"))
	require.Equal(t, 254, r.code, r.stderr)
	require.Contains(t, r.stderr, "nope")
}

// The membership nemesis adds spares, removes and replaces members while
// partitions and kills go on; the correct build stays valid, and the
// changes are nemesis events with the configuration they chose.
func TestMembershipChangesUnderPartitionsAndKillsStayValid(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run skipped in -short mode")
	}
	store := t.TempDir()
	r := paxtest(t, "run", "--nodes", "5", "--nemesis", "membership,partition,kill", "--nemesis-interval", "1500ms",
		"--time-limit", "15s", "--seed", "4", "--store", store)
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	dir, err := filepath.EvalSymlinks(filepath.Join(store, "latest"))
	require.NoError(t, err)
	res := readResults(t, dir)
	require.Equal(t, "valid", res.Verdict)
	changes := 0
	for _, e := range res.Nemesis {
		if e.F == "members" && strings.Contains(e.Detail, "chosen at slot") {
			changes++
		}
	}
	require.Positive(t, changes, "no membership change was made")
	noProcessesUnder(t, dir)
}

// A run of the default mix (overlapping faults, scenarios in rotation) is
// valid on the correct build, shades every fault it performed, and replays
// op for op.
func TestARunOfTheDefaultMixIsValidAndReplaysOpForOp(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run skipped in -short mode")
	}
	store := t.TempDir()
	r := paxtest(t, "run", "--nodes", "5", "--time-limit", "12s", "--nemesis-interval", "2s", "--seed", "11", "--store", store)
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	dir, err := filepath.EvalSymlinks(filepath.Join(store, "latest"))
	require.NoError(t, err)
	require.Contains(t, dir, "register-all", "the default nemesis is all")
	ops := stepOps(t, dir)
	kinds := map[string]bool{}
	for _, op := range ops {
		kinds[op] = true
	}
	require.True(t, kinds["partition"] || kinds["kill"] || kinds["pause"], "the mix faulted the cluster: %v", ops)
	rs := paxtest(t, "run", "--replay", dir, "--store", store)
	require.Contains(t, []int{0, 1}, rs.code, "replay:\n%s\n%s", rs.stdout, rs.stderr)
	replayDir, err := filepath.EvalSymlinks(filepath.Join(store, "latest"))
	require.NoError(t, err)
	require.NotEqual(t, dir, replayDir)
	b, err := os.ReadFile(filepath.Join(replayDir, "results.json"))
	require.NoError(t, err)
	var rr struct {
		Replay struct{ Steps, Executed, Errors int } `json:"replay"`
	}
	require.NoError(t, json.Unmarshal(b, &rr))
	require.Equal(t, len(ops), rr.Replay.Steps)
	require.Equal(t, rr.Replay.Steps, rr.Replay.Executed, "every recorded op was replayed")
	require.Zero(t, rr.Replay.Errors)
	replayed := stepOps(t, replayDir)
	require.GreaterOrEqual(t, len(replayed), len(ops))
	require.Equal(t, ops, replayed[:len(ops)], "the replay performed the recorded ops in order")
	// then its own end of run: what is still in force (a node the replay's
	// leader kill, remapped, left down) is healed
	for _, src := range stepSources(t, replayDir)[len(ops):] {
		require.Equal(t, "heal-all", src, "after the recorded ops only the end-of-run heal: %v", replayed[len(ops):])
	}
	noProcessesUnder(t, replayDir)
}

// requireVerdictExit: an interrupted run ends with a verdict (valid,
// invalid or unknown: exit 0, 1 or 2), not as a crash or a harness failure.
func requireVerdictExit(t *testing.T, err error, stderr string) {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		require.Contains(t, []int{1, 2}, ee.ExitCode(), "exit code after SIGINT: %s", stderr)
		return
	}
	require.NoError(t, err)
}

func TestBenchCheckComparesTheMediansOfAlternatingRoundsAndKeepsEveryRound(t *testing.T) {
	store := t.TempDir()
	r := paxtest(t, "bench", "check", "--ops", "3000", "--rounds", "3", "--store", store)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, 3, strings.Count(r.stderr, "porcupine, then paxtest check"), r.stderr)
	files, err := filepath.Glob(filepath.Join(store, "bench-check-*", "check.json"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	b, err := os.ReadFile(files[0])
	require.NoError(t, err)
	var rows []harness.BenchCheckRow
	require.NoError(t, json.Unmarshal(b, &rows))
	require.Len(t, rows, 1)
	row := rows[0]
	require.Equal(t, "valid", row.Verdict)
	require.Len(t, row.CheckRounds, 3)
	require.Len(t, row.PorcupineRounds, 3)
	require.Contains(t, row.CheckRounds, row.CheckSec, "the check's time is one of its rounds: the median")
	require.Contains(t, row.PorcupineRounds, row.PorcupineSec)
	require.InDelta(t, row.CheckSec/row.PorcupineSec, row.Ratio, 1e-9)

	bad := paxtest(t, "bench", "check", "--ops", "3000", "--rounds", "-1", "--store", store)
	require.Equal(t, 254, bad.code)
	require.Contains(t, bad.stderr, "--rounds -1")
}
