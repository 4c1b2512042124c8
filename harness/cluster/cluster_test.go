package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/harness/db"
	"github.com/paxtest/paxtest/nemesis/network"
	"github.com/paxtest/paxtest/target/api"
)

// fakeNode answers /health and /debug/status on the client address its
// arguments name, as a node would, with the role and ballot the test sets.
type fakeNode struct {
	srv    *http.Server
	exited chan struct{}
	once   sync.Once
	err    error

	mu       sync.Mutex
	role     string
	promised string
}

func (p *fakeNode) exit(err error) {
	p.once.Do(func() {
		p.err = err
		_ = p.srv.Close()
		close(p.exited)
	})
}

func (p *fakeNode) Kill() error             { p.exit(errors.New("signal: killed")); return nil }
func (p *fakeNode) Stop() error             { p.exit(nil); return nil }
func (p *fakeNode) Pause() error            { return nil }
func (p *fakeNode) Resume() error           { return nil }
func (p *fakeNode) Exited() <-chan struct{} { return p.exited }
func (p *fakeNode) ExitErr() error          { <-p.exited; return p.err }
func (p *fakeNode) Pid() int                { return 0 }

var _ Process = (*fakeNode)(nil)

// fakeLauncher starts fakeNodes; a node named in failing exits at once,
// writing its complaint to its log as a node would.
type fakeLauncher struct {
	mu       sync.Mutex
	nodes    map[string]*fakeNode
	failing  map[string]bool
	launches int
}

var _ Launcher = (*fakeLauncher)(nil)

func flag(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func (l *fakeLauncher) Launch(spec Spec) (Process, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.launches++
	p := &fakeNode{exited: make(chan struct{}), role: "follower", promised: "0.0"}
	if l.failing[spec.Name] {
		if err := os.WriteFile(spec.LogPath, []byte("level=ERROR msg=\"open wal: corrupt record\"\n"), 0o644); err != nil {
			return nil, err
		}
		p.srv = &http.Server{}
		p.exit(errors.New("exit status 1"))
		return p, nil
	}
	ln, err := net.Listen("tcp", flag(spec.Args, "--listen-client"))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /debug/status", func(w http.ResponseWriter, _ *http.Request) {
		p.mu.Lock()
		st := api.Status{Role: p.role, Promised: p.promised}
		p.mu.Unlock()
		_ = json.NewEncoder(w).Encode(st)
	})
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	l.nodes[spec.Name] = p
	return p, nil
}

func (l *fakeLauncher) set(name, role, promised string) {
	l.mu.Lock()
	p := l.nodes[name]
	l.mu.Unlock()
	p.mu.Lock()
	p.role, p.promised = role, promised
	p.mu.Unlock()
}

// paxtestDB is the built-in target, its nodes a binary never run (the
// fake launcher serves them).
func paxtestDB(t *testing.T) db.DB {
	p, err := db.NewPaxtest(db.Paxtest{Binary: "/nonexistent/paxtest"})
	require.NoError(t, err)
	return p
}

// args is the command line node id is started with.
func args(t *testing.T, c *Cluster, id int) []string {
	l, err := c.command(c.Node(id))
	require.NoError(t, err)
	require.Equal(t, "/nonexistent/paxtest", l.Binary)
	return l.Args
}

func newFake(t *testing.T, nodes int, failing ...string) (*Cluster, *fakeLauncher) {
	l := &fakeLauncher{nodes: map[string]*fakeNode{}, failing: map[string]bool{}}
	for _, f := range failing {
		l.failing[f] = true
	}
	c, err := New(Config{Nodes: nodes, DB: paxtestDB(t), Dir: t.TempDir(), Launcher: l})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c, l
}

func TestStartReturnsOnceEveryNodeAnswersHealth(t *testing.T) {
	c, l := newFake(t, 3)
	require.NoError(t, c.Start(context.Background()))
	require.Equal(t, 3, l.launches)
	for _, id := range c.IDs() {
		require.False(t, c.IsDown(id), "n%d", id)
	}
}

func TestANodeThatExitsWhileStartingIsNamedWithItsLog(t *testing.T) {
	c, _ := newFake(t, 3, "n2")
	err := c.Start(context.Background())
	require.Error(t, err)
	require.Contains(t, err.Error(), "node n2 exited while starting")
	require.Contains(t, err.Error(), "corrupt record", "the error quotes the node's log")
}

func TestEveryNodeIsGivenItsOwnPortsAndTheWholeConfiguration(t *testing.T) {
	c, _ := newFake(t, 5)
	seen := map[string]bool{}
	for _, n := range c.Nodes() {
		for _, a := range []string{n.PeerAddr, n.ClientAddr} {
			require.False(t, seen[a], "address %s given twice", a)
			seen[a] = true
			host, _, err := net.SplitHostPort(a)
			require.NoError(t, err)
			require.True(t, net.ParseIP(host).IsLoopback(), "test traffic stays on loopback: %s", a)
		}
		cmd := args(t, c, n.ID)
		require.Len(t, strings.Split(flag(cmd, "--peers"), ","), 5)
		require.Equal(t, n.ClientAddr, flag(cmd, "--listen-client"))
		require.Equal(t, filepath.Join(c.cfg.Dir, "nodes", n.Name(), "data"), flag(cmd, "--data-dir"))
	}
}

func TestTheLeaderIsTheNodeLeadingWithTheHighestBallot(t *testing.T) {
	c, l := newFake(t, 3)
	ctx := context.Background()
	require.NoError(t, c.Start(ctx))
	require.Equal(t, 0, c.Leader(ctx), "nobody leads yet")

	// a deposed leader that has not heard of its successor still says it leads
	l.set("n1", "leader", "3.1")
	l.set("n3", "leader", "10.3")
	l.set("n2", "leader", "not-a-ballot") // unreadable: counts as no leader
	id, err := c.WaitLeader(ctx, 2*time.Second)
	require.NoError(t, err)
	require.Equal(t, 3, id)

	require.NoError(t, c.Kill(3))
	require.True(t, c.IsDown(3))
	require.Equal(t, 1, c.Leader(ctx), "a killed node is not asked")
}

func TestWaitLeaderGivesUpAtItsDeadlineNamingTheLogs(t *testing.T) {
	c, _ := newFake(t, 3)
	ctx := context.Background()
	require.NoError(t, c.Start(ctx))
	_, err := c.WaitLeader(ctx, 100*time.Millisecond)
	require.ErrorContains(t, err, "no node became leader within 100ms")
	require.ErrorContains(t, err, filepath.Join(c.cfg.Dir, "nodes"))
}

func TestRestartStartsOnlyADownNode(t *testing.T) {
	c, l := newFake(t, 3)
	ctx := context.Background()
	require.NoError(t, c.Start(ctx))
	require.NoError(t, c.Restart(ctx, 2))
	require.Equal(t, 3, l.launches, "a running node is not started twice")
	require.NoError(t, c.Kill(2))
	require.NoError(t, c.Restart(ctx, 2))
	require.Equal(t, 4, l.launches)
	require.False(t, c.IsDown(2))
}

func TestSparesStartOnlyWhenTheyJoin(t *testing.T) {
	l := &fakeLauncher{nodes: map[string]*fakeNode{}, failing: map[string]bool{}}
	c, err := New(Config{Nodes: 3, Spares: 2, DB: paxtestDB(t), Dir: t.TempDir(), Launcher: l})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	require.NoError(t, c.Start(context.Background()))
	require.Equal(t, 3, l.launches)
	require.Equal(t, []int{4, 5}, c.Spares())
	require.Equal(t, "1,2,3", flag(args(t, c, 1), "--members"), "the initial configuration excludes the spares")
}

func TestANewClusterNeedsANode(t *testing.T) {
	_, err := New(Config{Nodes: 0, DB: paxtestDB(t), Dir: t.TempDir()})
	require.ErrorContains(t, err, "at least one node")
	_, err = New(Config{Nodes: 3, Dir: t.TempDir()})
	require.ErrorContains(t, err, "needs a system to run")
}

// The local launcher runs a real child: its output goes to the log, it can
// be paused, resumed and killed, and Stop ends even a paused one.
func TestTheLocalLauncherRunsPausesAndStopsAChild(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("needs sh")
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "child.log")
	p, err := Local{}.Launch(Spec{Name: "child", Binary: sh, Args: []string{"-c", "echo started; exec sleep 60"}, LogPath: log})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(log)
		return strings.Contains(string(b), "started")
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, p.Pause())
	require.NoError(t, p.Stop(), "a paused child stops too")
	select {
	case <-p.Exited():
	default:
		t.Fatal("Stop returned before the child exited")
	}
	require.Error(t, p.ExitErr(), "sleep was ended by a signal")
	require.NoError(t, p.Kill(), "killing an exited child is not an error")

	_, err = Local{}.Launch(Spec{Name: "ghost", Binary: filepath.Join(dir, "missing"), LogPath: log})
	require.ErrorContains(t, err, "start ghost")
}

func TestASystemWhosePeersShareAddressesNeedsAFaultLayerThatCanTellThemApart(t *testing.T) {
	// a fault layer that can only tell links apart by their own addresses
	// (as iptables does, by source and destination)
	_, err := New(Config{Nodes: 3, DB: db.NewEtcd("etcd"), Dir: t.TempDir(), Net: struct{ network.Network }{&network.Direct{}}})
	require.ErrorContains(t, err, "cannot tell apart the peer connections of --db etcd")

	p := network.NewProxy()
	c, err := New(Config{Nodes: 3, DB: db.NewEtcd("etcd"), Dir: t.TempDir(), Net: p})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	l, err := c.command(c.nodes[0])
	require.NoError(t, err)
	adv := ""
	for i, a := range l.Args {
		if a == "--initial-advertise-peer-urls" {
			adv = l.Args[i+1]
		}
	}
	require.Equal(t, "http://"+p.Dial(2, 1), adv, "n1 advertises the address its peers dial")
	require.Equal(t, p.Dial(2, 1), p.Dial(3, 1))
}
