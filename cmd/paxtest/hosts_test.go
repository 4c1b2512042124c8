package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/harness/hosts"
)

func needNetns(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end run skipped in -short mode")
	}
	if err := hosts.NetnsAvailable(); err != nil {
		t.Skipf("skipped (CI runs it as root, with what it needs): %v", err)
	}
}

// runNamespaces is the prefix of the namespaces a run's progress names
// ("nodes run in network namespaces paxtest-<run>-n1..").
var runNamespaces = regexp.MustCompile(`network namespaces (paxtest-[0-9a-z]+-)n1`)

// namespacesLeft lists the namespaces with prefix, polling a few seconds
// for ones on their way out.
func namespacesLeft(t *testing.T, prefix string) []string {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		out, err := exec.Command("ip", "netns", "list").Output()
		require.NoError(t, err)
		var left []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, prefix) {
				left = append(left, l)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Nodes in namespaces of their own, each on its own address, under
// partitions and kills through iptables inside the namespaces: valid, and
// no namespace, veth or process is left.
func TestNetnsHostsRunIsValidOnOwnAddressesAndLeavesNothing(t *testing.T) {
	needNetns(t)
	store := t.TempDir()
	r := paxtest(t, "run", "--hosts", "netns", "--net", "iptables", "--nodes", "3", "--nemesis", "partition,kill",
		"--nemesis-interval", "1s", "--time-limit", "8s", "--seed", "3", "--store", store)
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	m := runNamespaces.FindStringSubmatch(r.stderr)
	require.NotNil(t, m, "the progress names the namespaces: %s", r.stderr)
	dir, err := filepath.EvalSymlinks(filepath.Join(store, "latest"))
	require.NoError(t, err)
	require.Equal(t, "valid", readResults(t, dir).Verdict)
	addrs := map[string]bool{}
	for _, id := range []string{"n1", "n2", "n3"} {
		b, err := os.ReadFile(filepath.Join(dir, "nodes", id+".log"))
		require.NoError(t, err)
		a := regexp.MustCompile(`peer_addr=(10\.213\.\d+\.\d+):`).FindSubmatch(b)
		require.NotNil(t, a, "%s binds an address of its own namespace", id)
		addrs[string(a[1])] = true
	}
	require.Len(t, addrs, 3, "every node on its own address")
	sched, err := os.ReadFile(filepath.Join(dir, "schedule.jsonl"))
	require.NoError(t, err)
	require.Contains(t, string(sched), `"f":"partition"`)
	require.Contains(t, string(sched), `"f":"kill"`)
	require.Empty(t, namespacesLeft(t, m[1]))
	noProcessesUnder(t, dir)
}

// Interrupted, the run removes its namespaces; killed (-9), it leaves
// them, and the next run removes them and says so.
func TestNetnsHostsAreRemovedOnCtrlCAndAfterTheHarnessIsKilled(t *testing.T) {
	needNetns(t)
	store := t.TempDir()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
		cmd := exec.Command(os.Args[0], "run", "--hosts", "netns", "--net", "iptables", "--nodes", "3", "--nemesis", "partition",
			"--nemesis-interval", "500ms", "--time-limit", "60s", "--store", store)
		cmd.Env = append(os.Environ(), "PAXTEST_BE_MAIN=1")
		var errb syncBuffer
		cmd.Stderr = &errb
		require.NoError(t, cmd.Start())
		var prefix string
		deadline := time.Now().Add(30 * time.Second)
		for prefix == "" || !strings.Contains(errb.String(), "phase start:") {
			if m := runNamespaces.FindStringSubmatch(errb.String()); m != nil {
				prefix = m[1]
			}
			require.True(t, time.Now().Before(deadline), "the run did not start within 30s: %s", errb.String())
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(time.Second) // a partition or two in force
		require.NoError(t, cmd.Process.Signal(sig))
		err := cmd.Wait()
		if sig == syscall.SIGINT {
			requireVerdictExit(t, err, errb.String())
			require.Empty(t, namespacesLeft(t, prefix), "Ctrl-C removes the namespaces")
			continue
		}
		require.NotEmpty(t, namespacesLeft(t, prefix), "kill -9 leaves them for the next start")
		r := paxtest(t, "run", "--hosts", "netns", "--net", "iptables", "--nodes", "1", "--nemesis", "none", "--time-limit", "1s", "--store", store)
		require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
		require.Contains(t, r.stderr, "removed a network namespace left by a harness that was killed: "+prefix)
		require.Empty(t, namespacesLeft(t, prefix))
	}
}

// syncBuffer is a bytes.Buffer a child's output goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The seeds' figure 8 schedule catches reconfirm-old-ballot with the
// nodes in namespaces as it does on loopback (through the proxies on the
// control address: the figure needs slow links, which iptables cannot
// give on a kernel without netem).
func TestNetnsHostsFigure8CatchesReconfirmOldBallotAsOnLoopback(t *testing.T) {
	needNetns(t)
	store := t.TempDir()
	r := paxtest(t, "run", "--hosts", "netns", "--net", "proxy", "--nodes", "5", "--nemesis", "figure8", "--bug", "reconfirm-old-ballot",
		"--time-limit", "15s", "--seed", "1", "--stop-on-divergence", "--store", store)
	require.Equal(t, 1, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "committed-then-overwritten")
	m := runNamespaces.FindStringSubmatch(r.stderr)
	require.NotNil(t, m, r.stderr)
	require.Empty(t, namespacesLeft(t, m[1]))
}
