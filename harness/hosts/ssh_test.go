package hosts_test

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/paxtest/paxtest/harness/cluster"
	"github.com/paxtest/paxtest/harness/hosts"
	"github.com/paxtest/paxtest/harness/hoststest"
)

func sandbox(t *testing.T, n int) *hoststest.Sandbox {
	t.Helper()
	if err := hoststest.Available(); err != nil {
		t.Skip("--hosts ssh tests run against sshd in namespaces, which " + err.Error())
	}
	s, err := hoststest.New(t.TempDir(), n)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// A node on an SSH host: installed, started, paused, killed by pid there;
// its output reaches its log here; its data comes back at Close, and
// nothing of the run stays on the host.
func TestSSHStartsSignalsAndCollectsANodeOnItsHost(t *testing.T) {
	s := sandbox(t, 1)
	f, err := hosts.ReadHostFile(s.HostFile, 1)
	require.NoError(t, err)
	var progress strings.Builder
	h, err := hosts.NewSSH(f, 1, &progress)
	require.NoError(t, err)
	local := t.TempDir()
	remote := h.DataDir(1, local)
	logPath := filepath.Join(t.TempDir(), "n1.log")
	p, err := h.Launch(cluster.Spec{Name: "n1", Binary: "/bin/sh", Args: []string{"-c", `echo hello; echo kept > file; exec sleep 600`}, LogPath: logPath})
	require.NoError(t, err)
	// polled on the host: a signal's effect on the state is not instant
	state := func(want string) error {
		return h.Run(1, "", "sh", "-c", `for i in $(seq 100); do grep -q "^State:.*$2" /proc/$1/status && exit 0; sleep 0.02; done; exit 1`,
			"sh", strconv.Itoa(p.Pid()), want)
	}
	require.NoError(t, state("S"), "the node runs there (sleeping), by its pid")
	require.NoError(t, p.Pause())
	require.NoError(t, state("T"), "paused: stopped")
	require.NoError(t, p.Resume())
	require.NoError(t, state("S"), "resumed")
	require.NoError(t, p.Kill())
	<-p.Exited()
	require.Error(t, p.ExitErr(), "killed -9")
	b, err := os.ReadFile(logPath)
	require.NoError(t, err)
	require.Contains(t, string(b), "hello")
	require.NoError(t, h.Close())
	b, err = os.ReadFile(filepath.Join(local, "file"))
	require.NoError(t, err, "the node's data came back (from %s)", remote)
	require.Equal(t, "kept\n", string(b))
	_, err = os.Stat(filepath.Dir(filepath.Dir(remote)))
	require.ErrorIs(t, err, os.ErrNotExist, "the run's directory on the host is gone (the sandbox's hosts share this filesystem)")
}

// A new run kills the nodes a killed harness left on a host (by their
// pid files) and removes their directories, saying so.
func TestANewSSHRunRemovesWhatAKilledHarnessLeftOnTheHost(t *testing.T) {
	s := sandbox(t, 1)
	f, err := hosts.ReadHostFile(s.HostFile, 1)
	require.NoError(t, err)
	old := filepath.Join(f.Dir, "runs", "20000101T000000.000")
	require.NoError(t, os.MkdirAll(old, 0o755))
	sleeper := exec.Command("sleep", "600")
	sleeper.Dir = filepath.Join(old, "n1", "data") // where the launch shell starts a node
	require.NoError(t, os.MkdirAll(sleeper.Dir, 0o755))
	require.NoError(t, sleeper.Start())
	bystander := exec.Command("sleep", "600") // an old pid taken over by a process of no run
	require.NoError(t, bystander.Start())
	defer func() { _ = bystander.Process.Kill(); _ = bystander.Wait() }()
	require.NoError(t, os.MkdirAll(filepath.Join(f.Dir, "runs", "20000101T000000.001"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(f.Dir, "runs", "20000101T000000.001", "n2.pid"), []byte(strconv.Itoa(bystander.Process.Pid)), 0o644))
	exited := make(chan error, 1)
	go func() { exited <- sleeper.Wait() }()
	require.NoError(t, os.WriteFile(filepath.Join(old, "n1.pid"), []byte(strconv.Itoa(sleeper.Process.Pid)), 0o644))
	var progress strings.Builder
	h, err := hosts.NewSSH(f, 1, &progress)
	require.NoError(t, err)
	defer func() { require.NoError(t, h.Close()) }()
	require.Contains(t, progress.String(), "what a harness that was killed left: "+old)
	select {
	case err := <-exited:
		require.Error(t, err, "killed -9")
	case <-time.After(5 * time.Second):
		t.Fatal("the left node still runs")
	}
	_, err = os.Stat(old)
	require.ErrorIs(t, err, os.ErrNotExist)
	st, err := os.ReadFile("/proc/" + strconv.Itoa(bystander.Process.Pid) + "/status")
	require.NoError(t, err)
	require.NotContains(t, string(st), "zombie", "a process that is not a node of the old run is left alone")
}

// Without identity_file, the keys come from the user's agent
// (SSH_AUTH_SOCK): here an agent serving the sandbox's key.
func TestSSHLogsInWithTheAgentsKeysWithoutAKeyFile(t *testing.T) {
	s := sandbox(t, 1)
	f, err := hosts.ReadHostFile(s.HostFile, 1)
	require.NoError(t, err)
	pemKey, err := os.ReadFile(f.IdentityFile)
	require.NoError(t, err)
	key, err := ssh.ParseRawPrivateKey(pemKey)
	require.NoError(t, err)
	f.IdentityFile = ""
	with := agent.NewKeyring()
	require.NoError(t, with.Add(agent.AddedKey{PrivateKey: key}))
	sock, ended := serveAgent(t, with)
	t.Setenv("SSH_AUTH_SOCK", sock)
	h, err := hosts.NewSSH(f, 1, io.Discard)
	require.NoError(t, err)
	require.NoError(t, h.Run(1, "", "true"))
	require.NoError(t, h.Close())
	requireEnded(t, ended, "Close lets go of the agent")

	sock, ended = serveAgent(t, agent.NewKeyring())
	t.Setenv("SSH_AUTH_SOCK", sock)
	_, err = hosts.NewSSH(f, 1, io.Discard)
	require.Error(t, err, "an agent without the key is refused")
	requireEnded(t, ended, "a refused login lets go of the agent")
}

// serveAgent serves keys as an SSH agent on a socket until the test ends;
// ended receives as each connection to it closes.
func serveAgent(t *testing.T, keys agent.Agent) (sock string, ended <-chan struct{}) {
	t.Helper()
	sock = filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	done := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = agent.ServeAgent(keys, c); done <- struct{}{} }()
		}
	}()
	return sock, done
}

func requireEnded(t *testing.T, ended <-chan struct{}, why string) {
	t.Helper()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal(why + ": the agent connection is still open 5 s later")
	}
}
