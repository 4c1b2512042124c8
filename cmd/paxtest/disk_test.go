package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/harness/disk"
)

// lazyOrSkip skips a test that needs the lazy disk where it cannot mount
// (it needs root and /dev/fuse; CI runs as root with FUSE).
func lazyOrSkip(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end run skipped in -short mode")
	}
	if err := disk.Available(); err != nil {
		t.Skipf("skipped: %v", err)
	}
}

// lazyMounts lists the lazy disks mounted under dir.
func lazyMounts(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mounts")
	require.NoError(t, err)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[0], "paxtest-lazy-") && strings.HasPrefix(f[1], dir) {
			out = append(out, f[1])
		}
	}
	return out
}

func TestAPowerLossOnTheLazyDiskCatchesWriteNoFsyncAndClearsTheCorrectBuild(t *testing.T) {
	lazyOrSkip(t)
	for _, tc := range []struct {
		name    string
		bug     []string
		code    int
		verdict string
	}{
		{"write-no-fsync", []string{"--bug", "write-no-fsync"}, 1, "invalid"},
		{"correct", nil, 0, "valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := t.TempDir()
			args := append([]string{"run", "--nodes", "3", "--nemesis", "power-loss", "--nemesis-interval", "2s",
				"--time-limit", "20s", "--seed", "1", "--stop-on-divergence", "--store", store}, tc.bug...)
			r := paxtest(t, args...)
			require.Equal(t, tc.code, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			dir := latest(t, store)
			require.Equal(t, tc.verdict, readResults(t, dir).Verdict)
			sched, err := os.ReadFile(filepath.Join(dir, "schedule.jsonl"))
			require.NoError(t, err)
			require.Contains(t, string(sched), `"f":"power-loss"`)
			cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
			require.NoError(t, err)
			require.Contains(t, string(cfg), `"disk": "lazy"`, "power-loss turned the lazy disk on")
			require.Empty(t, lazyMounts(t, store), "no lazy disk stays mounted")
			noProcessesUnder(t, dir)
		})
	}
}

func TestWriteNoFsyncLosesNothingToKillsWithoutTheLazyDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run skipped in -short mode")
	}
	store := t.TempDir()
	r := paxtest(t, "run", "--nodes", "3", "--nemesis", "crash-quorum", "--bug", "write-no-fsync", "--time-limit", "15s",
		"--seed", "1", "--store", store)
	require.Equal(t, 0, r.code, "kill -9 leaves the page cache: stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
}

func TestALazyDiskIsUnmountedOnCtrlCAndAfterTheHarnessIsKilledByTheNextRun(t *testing.T) {
	lazyOrSkip(t)
	store := t.TempDir()
	start := func() (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(os.Args[0], "run", "--nodes", "3", "--nemesis", "power-loss", "--nemesis-interval", "1s",
			"--time-limit", "60s", "--store", store)
		cmd.Env = append(os.Environ(), "PAXTEST_BE_MAIN=1")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		require.NoError(t, cmd.Start())
		deadline := time.Now().Add(20 * time.Second)
		for len(lazyMounts(t, store)) < 3 {
			require.True(t, time.Now().Before(deadline), "the lazy disks were not mounted within 20s: %s", errb.String())
			time.Sleep(50 * time.Millisecond)
		}
		return cmd, &errb
	}

	cmd, errb := start()
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	requireVerdictExit(t, cmd.Wait(), errb.String())
	require.Empty(t, lazyMounts(t, store), "Ctrl-C unmounted every lazy disk")

	cmd, _ = start()
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait() // killed: its exit status is the signal's
	left := lazyMounts(t, store)
	require.Len(t, left, 3, "a killed harness cannot unmount")

	r := paxtest(t, "run", "--nodes", "3", "--disk", "lazy", "--nemesis", "none", "--time-limit", "2s", "--store", t.TempDir())
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	require.Empty(t, lazyMounts(t, store), "the next run removed the mounts the killed harness left")
	for _, dir := range left {
		require.Contains(t, r.stderr+r.stdout, dir, "and said which")
	}
}

func TestADamagedWALRecordStopsItsNodeNamingFileAndOffsetAndARepairLetsItServeAgain(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run skipped in -short mode")
	}
	schedule := filepath.Join(t.TempDir(), "damage.pax")
	require.NoError(t, os.WriteFile(schedule, []byte("sleep 2s\nleader L\npick F\nkill F\ncorrupt F bitflip wal.log 100\nrestart F\nsleep 1s\nrepair F\nrestart F\nsleep 60s\n"), 0o644))
	store := t.TempDir()
	r := paxtest(t, "run", "--nodes", "3", "--nemesis", "none", "--nemesis-schedule", schedule, "--time-limit", "8s", "--seed", "1", "--store", store)
	require.Equal(t, 0, r.code, "two of three nodes serve on: stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	b, err := os.ReadFile(filepath.Join(latest(t, store), "results.json"))
	require.NoError(t, err)
	var res struct {
		Verdict string   `json:"verdict"`
		Damage  []string `json:"damage"`
	}
	require.NoError(t, json.Unmarshal(b, &res))
	require.Len(t, res.Damage, 3, "%v", res.Damage)
	require.Regexp(t, `^n\d's wal.log: bit \d of byte 100 flipped$`, res.Damage[0])
	require.Contains(t, res.Damage[1], "stopped rather than serve its damaged data")
	require.Regexp(t, `nodes/n\d/data/wal.log: corrupt record at offset \d+`, res.Damage[1], "the node named the file and the offset")
	require.Regexp(t, `^n\d's damaged data restored$`, res.Damage[2])
	require.Equal(t, res.Damage[0][:2], res.Damage[2][:2], "the node damaged is the one repaired")
	require.Contains(t, r.stdout, "damage: ", "and the summary says it")
	sched, err := os.ReadFile(filepath.Join(latest(t, store), "schedule.jsonl"))
	require.NoError(t, err)
	var restarts [][]int // what each restart found refused
	for _, line := range strings.Split(strings.TrimSpace(string(sched)), "\n") {
		var op struct {
			F       string `json:"f"`
			Stopped []int  `json:"stopped"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &op))
		if op.F == "restart" {
			restarts = append(restarts, op.Stopped)
		}
	}
	require.Len(t, restarts, 2, "%s", sched)
	require.NotEmpty(t, restarts[0], "refused on damaged data")
	require.Empty(t, restarts[1], "repaired, it started")
}
