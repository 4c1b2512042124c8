package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/harness/hoststest"
)

// sshSandbox is five stand-in hosts, each an sshd in a namespace of its own.
func sshSandbox(t *testing.T) *hoststest.Sandbox {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end run skipped in -short mode")
	}
	if err := hoststest.Available(); err != nil {
		t.Skip("--hosts ssh runs against sshd in namespaces, which " + err.Error())
	}
	s, err := hoststest.New(t.TempDir(), 5)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// Through SSH, as to real hosts: the program installed on each host,
// partitions as iptables rules there, kills and pauses by pid there. The
// correct build is valid, the nodes' data comes back into the run
// directory, and no node process outlives the run; with no-fsync, a
// crash-quorum through the same path catches it.
func TestSSHHostsRunIsValidUnderFaultsAndCatchesABugSwitch(t *testing.T) {
	s := sshSandbox(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"correct", []string{"--nemesis", "partition,kill,pause", "--time-limit", "15s"}, 0},
		{"no-fsync", []string{"--nemesis", "crash-quorum", "--bug", "no-fsync", "--time-limit", "20s", "--stop-on-divergence"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := t.TempDir()
			args := append([]string{"run", "--hosts", "ssh", "--host-file", s.HostFile, "--net", "iptables", "--nodes", "5",
				"--nemesis-interval", "2s", "--seed", "3", "--store", store}, tc.args...)
			r := paxtest(t, args...)
			require.Equal(t, tc.code, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			require.Contains(t, r.stderr, "over SSH as root")
			dir, err := filepath.EvalSymlinks(filepath.Join(store, "latest"))
			require.NoError(t, err)
			for _, id := range []string{"n1", "n5"} {
				entries, err := os.ReadDir(filepath.Join(dir, "nodes", id, "data"))
				require.NoError(t, err)
				require.NotEmpty(t, entries, "%s's data came back from its host", id)
				b, err := os.ReadFile(filepath.Join(dir, "nodes", id+".log"))
				require.NoError(t, err)
				require.Contains(t, string(b), "node started", "%s's output reached its log", id)
			}
			noProcessesUnder(t, filepath.Join(filepath.Dir(s.HostFile), "on-hosts"))
		})
	}
}

// Killed (-9), the harness's connections close and every node on the
// hosts dies with them (the launch shell's watch); the next run kills
// what might be left by its pid files, removes the run's directory from
// each host and says so.
func TestSSHHostsNodesDieWithAKilledHarnessAndTheNextRunCleansUp(t *testing.T) {
	s := sshSandbox(t)
	store := t.TempDir()
	cmd := exec.Command(os.Args[0], "run", "--hosts", "ssh", "--host-file", s.HostFile, "--nodes", "5", "--nemesis", "partition,pause",
		"--nemesis-interval", "500ms", "--time-limit", "60s", "--store", store)
	cmd.Env = append(os.Environ(), "PAXTEST_BE_MAIN=1")
	var errb syncBuffer
	cmd.Stderr = &errb
	require.NoError(t, cmd.Start())
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(errb.String(), "phase start:") {
		require.True(t, time.Now().Before(deadline), "the run did not start within 60s: %s", errb.String())
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a pause or a partition in force
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait() // killed: its exit says so
	noProcessesUnder(t, filepath.Join(filepath.Dir(s.HostFile), "on-hosts"))
	r := paxtest(t, "run", "--hosts", "ssh", "--host-file", s.HostFile, "--nodes", "5", "--nemesis", "none", "--time-limit", "1s", "--store", store)
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	require.Contains(t, r.stderr, "what a harness that was killed left")
}
