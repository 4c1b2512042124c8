package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/harness/db"
)

// The built-in target run through --db exec, as a user's own system is:
// the contract is complete when it checks the same and catches the same
// bug switch as natively.
func TestTheBuiltInTargetRunsThroughTheExecContractAsNatively(t *testing.T) {
	example := filepath.Join("..", "..", "examples", "paxtest.json")
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		verdict string
	}{
		{"correct", []string{"--nodes", "3", "--nemesis", "partition,kill"}, 0, "valid"},
		{"no-fsync", []string{"--nodes", "3", "--nemesis", "crash-quorum", "--bug", "no-fsync"}, 1, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := t.TempDir()
			args := append([]string{"run", "--db", "exec", "--db-config", example, "--time-limit", "10s", "--seed", "2", "--store", store}, tc.args...)
			r := paxtest(t, args...)
			require.Equal(t, tc.code, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			dir, err := filepath.EvalSymlinks(filepath.Join(store, "latest"))
			require.NoError(t, err)
			require.Equal(t, tc.verdict, readResults(t, dir).Verdict)
			b, err := os.ReadFile(filepath.Join(dir, "config.json"))
			require.NoError(t, err)
			var cfg struct {
				DB       string `json:"db"`
				DBConfig string `json:"db_config"`
			}
			require.NoError(t, json.Unmarshal(b, &cfg))
			require.Equal(t, "exec", cfg.DB)
			require.True(t, filepath.IsAbs(cfg.DBConfig), "a replay from elsewhere finds the file: %s", cfg.DBConfig)
			noProcessesUnder(t, dir)
		})
	}
}

func TestASystemThatServesNoLogIsJudgedOnItsHistoryAndSaysWhatDidNotApply(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "paxtest.json"))
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(b, &cfg))
	cfg["log"], cfg["members"] = false, false
	b, err = json.Marshal(cfg)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "nolog.json")
	require.NoError(t, os.WriteFile(file, b, 0o644))
	store := t.TempDir()
	r := paxtest(t, "run", "--db", "exec", "--db-config", file, "--nodes", "3", "--nemesis", "partition", "--time-limit", "5s", "--store", store)
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	dir, err := filepath.EvalSymlinks(filepath.Join(store, "latest"))
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(dir, "logs.jsonl"))
	require.ErrorIs(t, err, os.ErrNotExist, "nothing was sampled")
	var res struct {
		Checkers map[string]any    `json:"checkers"`
		NotRun   map[string]string `json:"not_run"`
	}
	b, err = os.ReadFile(filepath.Join(dir, "results.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &res))
	require.Contains(t, res.Checkers, "linearizability")
	for _, c := range []string{"log-agreement", "node-invariants"} {
		require.NotContains(t, res.Checkers, c)
		require.True(t, strings.HasPrefix(res.NotRun[c], "does not apply: --db exec serves no committed log"), "%s: %q", c, res.NotRun[c])
	}
}

func TestABadDescriptionFileIsRefusedBeforeTheRunStarts(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"command":["x","{nope}"]}`), 0o644))
	store := t.TempDir()
	r := paxtest(t, "run", "--db", "exec", "--db-config", file, "--store", store)
	require.Equal(t, 254, r.code)
	require.Contains(t, r.stderr, `field command[1]: "{nope}" holds an unknown placeholder`)
	entries, err := os.ReadDir(store)
	require.NoError(t, err)
	require.Empty(t, entries, "no run directory was made")
}

func TestAMembershipNemesisIsRefusedAgainstASystemThatCannotChangeItsMembers(t *testing.T) {
	file := filepath.Join(t.TempDir(), "nomembers.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"command":["{paxtest}","node","--id","{id}"],"log":true}`), 0o644))
	store := t.TempDir()
	r := paxtest(t, "run", "--db", "exec", "--db-config", file, "--nemesis", "membership", "--store", store)
	require.Equal(t, 254, r.code, r.stderr)
	require.Contains(t, r.stderr, "--nemesis membership changes the membership, which --db exec does not offer")
	entries, err := os.ReadDir(store)
	require.NoError(t, err)
	require.Empty(t, entries, "no run directory was made")
}

// etcdOrSkip is the pinned etcd in the user's cache; a machine that never
// built it skips (CI builds it before the tests, in .ci/run).
func etcdOrSkip(t *testing.T) string {
	bin, err := db.EtcdCachePath()
	require.NoError(t, err)
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("etcd %s is not built at %s: `paxtest run --db etcd` builds it once (so does .ci/run)", db.EtcdVersion, bin)
	}
	return bin
}

// A real etcd cluster, its peer traffic through the proxy fault layer,
// under partitions and kills, with either workload: valid, with the nodes'
// logs not applying.
func TestARealEtcdClusterUnderPartitionsAndKillsIsValid(t *testing.T) {
	etcdOrSkip(t)
	for _, workload := range []string{"register", "append"} {
		t.Run(workload, func(t *testing.T) {
			store := t.TempDir()
			r := paxtest(t, "run", "--db", "etcd", "--workload", workload, "--nodes", "3", "--nemesis", "partition,kill",
				"--time-limit", "15s", "--seed", "4", "--store", store)
			require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			dir, err := filepath.EvalSymlinks(filepath.Join(store, "latest"))
			require.NoError(t, err)
			b, err := os.ReadFile(filepath.Join(dir, "results.json"))
			require.NoError(t, err)
			var res struct {
				Verdict  string            `json:"verdict"`
				NotRun   map[string]string `json:"not_run"`
				Checkers map[string]struct {
					Verdict string `json:"verdict"`
				} `json:"checkers"`
			}
			require.NoError(t, json.Unmarshal(b, &res))
			require.Equal(t, "valid", res.Verdict)
			require.Equal(t, "valid", res.Checkers["log-agreement"].Verdict, "every member's revisions agree and hold every acknowledged write")
			require.Contains(t, res.NotRun["node-invariants"], "--db etcd's nodes report no invariants of their own")
			require.NotContains(t, res.Checkers, "node-invariants")
			history := map[string]string{"register": "linearizability", "append": "append"}[workload]
			require.Equal(t, "valid", res.Checkers[history].Verdict, "the %s check ran and passed", history)
			sched, err := os.ReadFile(filepath.Join(dir, "schedule.jsonl"))
			require.NoError(t, err)
			require.Contains(t, string(sched), `"f":"partition"`, "the nemesis cut links")
		})
	}
}

func TestEtcdChangesItsMembersThroughItsMemberAPIAndStartsANewMemberOnceAdded(t *testing.T) {
	etcdOrSkip(t)
	store := t.TempDir()
	r := paxtest(t, "run", "--db", "etcd", "--nodes", "3", "--nemesis", "membership", "--nemesis-interval", "2s",
		"--time-limit", "20s", "--seed", "6", "--store", store)
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	dir, err := filepath.EvalSymlinks(filepath.Join(store, "latest"))
	require.NoError(t, err)
	f, err := os.Open(filepath.Join(dir, "schedule.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	type op struct {
		F      string `json:"f"`
		Node   int    `json:"node"`
		Change *struct {
			Op   string `json:"op"`
			Node int    `json:"node"`
			With int    `json:"with"`
			OK   bool   `json:"ok"`
		} `json:"change"`
	}
	var ops []op
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var o op
		require.NoError(t, json.Unmarshal(sc.Bytes(), &o))
		ops = append(ops, o)
	}
	changed := 0
	for i, o := range ops {
		if o.F != "members" || o.Change == nil || !o.Change.OK || o.Change.Op == "remove" {
			continue
		}
		changed++
		joining := o.Change.Node
		if o.Change.Op == "replace" {
			joining = o.Change.With
		}
		require.Less(t, i+1, len(ops), "the change is followed by the new member's start")
		require.Equal(t, "join", ops[i+1].F, "an etcd member starts once it was added, not before")
		require.Equal(t, joining, ops[i+1].Node)
	}
	require.Positive(t, changed, "a member was added in 20 s: %s", r.stdout)
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	require.NoError(t, err)
	require.Contains(t, string(b), `"verdict": "valid"`)
}

func TestEtcdRefusesWhatItDoesNotOfferBeforeTheRunStarts(t *testing.T) {
	etcdOrSkip(t)
	for _, tc := range []struct {
		name, want string
		args       []string
		root       bool
	}{
		{"a fault layer that cannot tell its peers apart", "--net iptables cannot tell apart the peer connections of --db etcd", []string{"--net", "iptables"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && os.Geteuid() != 0 {
				t.Skip("--net iptables needs root")
			}
			store := t.TempDir()
			r := paxtest(t, append([]string{"run", "--db", "etcd", "--nodes", "3", "--time-limit", "2s", "--store", store}, tc.args...)...)
			require.Equal(t, 254, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			require.Contains(t, r.stderr, tc.want)
			entries, err := os.ReadDir(store)
			require.NoError(t, err)
			require.Empty(t, entries, "refused before a run directory was made")
		})
	}
}
