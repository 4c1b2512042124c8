// Package cluster launches and stops the target's nodes as a cluster:
// ports and directories, the command line of each node, health and leader
// waits, kill -9, pause, restart, spare nodes joining and retiring, and a
// teardown that leaves no process behind. Nodes are processes started
// through a Launcher (local children today, with Pdeathsig).
//
// It owns processes and ports. It must not decide faults (nemesis/),
// generate operations (workloads/) or judge histories (checker/); it sees
// the network fault layer only as a network.Network.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/paxtest/paxtest/nemesis/network"
	"github.com/paxtest/paxtest/target/api"
)

// Config configures a cluster.
type Config struct {
	Nodes int // the initial configuration: n1..n<Nodes>
	// Spares are nodes n<Nodes+1>.. outside the initial configuration,
	// with ports and directories ready; they run only once Join starts
	// them (a membership change adds them).
	Spares   int
	Binary   string   // the paxtest binary; "" means this executable
	Env      []string // extra environment for nodes
	Dir      string   // the run directory: nodes/<id>.log, nodes/<id>/data
	Bugs     string   // passed to every node's --bug
	Seed     int64
	Net      network.Network
	Launcher Launcher
	// Timing of the nodes.
	Tick           time.Duration
	ElectionTicks  int
	HeartbeatTicks int
	RequestTimeout time.Duration
	Window         int // α, passed to every node's --window (0: the node's default)
}

// Node is one member of the cluster.
type Node struct {
	ID         int
	PeerAddr   string
	ClientAddr string
	LogPath    string
	DataDir    string

	mu      sync.Mutex
	proc    Process
	paused  bool
	retired bool // a spare not started yet, or a node retired after its removal
}

// Name is the node's name in logs and histories: "n1".
func (n *Node) Name() string { return "n" + strconv.Itoa(n.ID) }

// Cluster is a set of node processes.
type Cluster struct {
	cfg   Config
	nodes []*Node
	// conns carries the harness's own requests to the nodes; Close closes
	// its idle connections first, since a node's HTTP server waits on
	// a connection dialled and never used before it stops cleanly.
	conns *http.Transport
}

// NewCluster allocates loopback ports and directories; it starts nothing.
func New(cfg Config) (*Cluster, error) {
	if cfg.Nodes < 1 {
		return nil, fmt.Errorf("a cluster needs at least one node, not %d", cfg.Nodes)
	}
	if cfg.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the paxtest binary: %w", err)
		}
		cfg.Binary = exe
	}
	if cfg.Net == nil {
		cfg.Net = &network.Direct{}
	}
	if cfg.Launcher == nil {
		cfg.Launcher = Local{}
	}
	c := &Cluster{cfg: cfg, conns: http.DefaultTransport.(*http.Transport).Clone()}
	peers := map[int]string{}
	taken := map[string]bool{} // two nodes must not be given one free port
	port := func(host string) (int, error) {
		for {
			p, err := FreePort(host)
			if err != nil {
				return 0, err
			}
			if k := net.JoinHostPort(host, strconv.Itoa(p)); !taken[k] {
				taken[k] = true
				return p, nil
			}
		}
	}
	for id := 1; id <= cfg.Nodes+cfg.Spares; id++ {
		host := cfg.Net.Host(id)
		pp, err := port(host)
		if err != nil {
			return nil, err
		}
		cp, err := port(host)
		if err != nil {
			return nil, err
		}
		n := &Node{
			ID: id, PeerAddr: net.JoinHostPort(host, strconv.Itoa(pp)), ClientAddr: net.JoinHostPort(host, strconv.Itoa(cp)),
			LogPath: filepath.Join(cfg.Dir, "nodes", fmt.Sprintf("n%d.log", id)),
			DataDir: filepath.Join(cfg.Dir, "nodes", fmt.Sprintf("n%d", id), "data"),
			retired: id > cfg.Nodes,
		}
		if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("create data dir of %s: %w", n.Name(), err)
		}
		peers[id] = n.PeerAddr
		c.nodes = append(c.nodes, n)
	}
	if err := cfg.Net.Setup(peers); err != nil {
		return nil, fmt.Errorf("set up the network fault layer: %w", err)
	}
	return c, nil
}

// Node ports come from below Linux's ephemeral range (32768-60999 by
// default). A port the kernel hands out for "port 0" is an ephemeral one,
// and between releasing it and the node binding it, any outgoing
// connection (the proxies' and clients' own) may take it as a source port;
// no source port is ever drawn from this range.
const portLow, portHigh = 20000, 32000

// FreePort finds a TCP port on host that is free now, from below the
// ephemeral range.
func FreePort(host string) (int, error) {
	var last error
	for try := 0; try < 200; try++ {
		port := portLow + rand.IntN(portHigh-portLow)
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			last = err
			continue
		}
		ln.Close()
		return port, nil
	}
	return 0, fmt.Errorf("find a free port on %s between %d and %d: %w", host, portLow, portHigh, last)
}

// Nodes returns every node, spares included, in id order.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// Node returns member id.
func (c *Cluster) Node(id int) *Node { return c.nodes[id-1] }

// IDs returns the ids of the nodes in play: every node but spares not
// started yet and nodes retired after their removal.
func (c *Cluster) IDs() []int {
	var out []int
	for _, n := range c.nodes {
		if !c.Retired(n.ID) {
			out = append(out, n.ID)
		}
	}
	return out
}

// Retired reports whether node id is out of play (a spare not started, or
// a removed node retired).
func (c *Cluster) Retired(id int) bool {
	n := c.Node(id)
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.retired
}

// Spares lists the retired nodes, which Join can start.
func (c *Cluster) Spares() []int {
	var out []int
	for _, n := range c.nodes {
		if c.Retired(n.ID) {
			out = append(out, n.ID)
		}
	}
	return out
}

// Join starts a retired node (on its data directory, empty for a spare)
// and waits until it answers.
func (c *Cluster) Join(ctx context.Context, id int) error {
	n := c.Node(id)
	n.mu.Lock()
	n.retired = false
	n.mu.Unlock()
	if !c.IsDown(id) {
		return nil
	}
	if err := c.launch(n); err != nil {
		return err
	}
	return c.waitHealthy(ctx, n)
}

// Retire kills node id and takes it out of play: restarts skip it.
func (c *Cluster) Retire(id int) error {
	n := c.Node(id)
	n.mu.Lock()
	n.retired = true
	p := n.proc
	n.mu.Unlock()
	if p == nil {
		return nil
	}
	if err := p.Kill(); err != nil {
		return fmt.Errorf("retire %s: %w", n.Name(), err)
	}
	return nil
}

// ChangeMembers sends a membership change to the leader, following
// not-leader hints.
func (c *Cluster) ChangeMembers(ctx context.Context, req api.MembersRequest) (api.MembersResponse, error) {
	addr := ""
	if l := c.Leader(ctx); l != 0 {
		addr = c.Node(l).ClientAddr
	}
	var res api.MembersResponse
	for try := 0; try < 5 && addr != "" && ctx.Err() == nil; try++ {
		cl := api.Client{Addr: addr, HTTP: &http.Client{Timeout: 5 * time.Second, Transport: c.conns}}
		var err error
		if res, err = cl.ChangeMembers(ctx, req); err != nil {
			// the change may have reached the leader: its outcome is unknown
			return api.MembersResponse{Error: api.ErrUnknown, Detail: err.Error()}, nil
		}
		if res.Error != api.ErrNotLeader || res.Leader == "" {
			return res, nil
		}
		addr = res.Leader
	}
	if addr == "" {
		return api.MembersResponse{Error: api.ErrNotLeader, Detail: "no leader"}, nil
	}
	return res, nil
}

func (c *Cluster) args(n *Node) []string {
	var peers, clients []string
	for _, p := range c.nodes {
		addr := p.PeerAddr
		if p.ID != n.ID {
			addr = c.cfg.Net.Dial(n.ID, p.ID)
		}
		peers = append(peers, fmt.Sprintf("%d=%s", p.ID, addr))
		clients = append(clients, fmt.Sprintf("%d=%s", p.ID, p.ClientAddr))
	}
	args := []string{"node", "--id", strconv.Itoa(n.ID), "--data-dir", n.DataDir,
		"--listen-peer", n.PeerAddr, "--listen-client", n.ClientAddr,
		"--peers", strings.Join(peers, ","), "--peer-clients", strings.Join(clients, ","),
		"--seed", strconv.FormatInt(c.cfg.Seed*1000+int64(n.ID), 10)}
	if c.cfg.Bugs != "" {
		args = append(args, "--bug", c.cfg.Bugs)
	}
	if c.cfg.Tick > 0 {
		args = append(args, "--tick", c.cfg.Tick.String())
	}
	if c.cfg.ElectionTicks > 0 {
		args = append(args, "--election-ticks", strconv.Itoa(c.cfg.ElectionTicks))
	}
	if c.cfg.HeartbeatTicks > 0 {
		args = append(args, "--heartbeat-ticks", strconv.Itoa(c.cfg.HeartbeatTicks))
	}
	if c.cfg.RequestTimeout > 0 {
		args = append(args, "--request-timeout", c.cfg.RequestTimeout.String())
	}
	if c.cfg.Window > 0 {
		args = append(args, "--window", strconv.Itoa(c.cfg.Window))
	}
	if c.cfg.Spares > 0 {
		// the initial configuration; spares join when a change adds them
		var members []string
		for id := 1; id <= c.cfg.Nodes; id++ {
			members = append(members, strconv.Itoa(id))
		}
		args = append(args, "--members", strings.Join(members, ","))
	}
	return args
}

// Start launches every node and waits until each answers /health. Whether
// one of them leads is the caller's to wait for (WaitLeader): a cluster
// that elects nobody is the target's failure, not the harness's.
func (c *Cluster) Start(ctx context.Context) error {
	for _, n := range c.nodes {
		if c.Retired(n.ID) {
			continue
		}
		if err := c.launch(n); err != nil {
			return err
		}
	}
	for _, n := range c.nodes {
		if c.Retired(n.ID) {
			continue
		}
		if err := c.waitHealthy(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) launch(n *Node) error {
	p, err := c.cfg.Launcher.Launch(Spec{Name: n.Name(), Binary: c.cfg.Binary, Args: c.args(n), Env: c.cfg.Env, LogPath: n.LogPath})
	if err != nil {
		return fmt.Errorf("start node %s: %w", n.Name(), err)
	}
	n.mu.Lock()
	n.proc, n.paused = p, false
	n.mu.Unlock()
	return nil
}

func (c *Cluster) waitHealthy(ctx context.Context, n *Node) error {
	deadline := time.Now().Add(10 * time.Second)
	hc := &http.Client{Timeout: 500 * time.Millisecond, Transport: c.conns}
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	for {
		resp, err := hc.Get("http://" + n.ClientAddr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.Exited():
			return fmt.Errorf("node %s exited while starting (%v); its log %s says:\n%s", n.Name(), p.ExitErr(), n.LogPath, tail(n.LogPath, 8))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s did not answer on %s within 10s; its log %s says:\n%s", n.Name(), n.ClientAddr, n.LogPath, tail(n.LogPath, 8))
		}
	}
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return "  " + strings.Join(all, "\n  ")
}

// Status asks node id for its debug status.
func (c *Cluster) Status(ctx context.Context, id int) (api.Status, error) {
	cl := api.Client{Addr: c.Node(id).ClientAddr, HTTP: &http.Client{Timeout: time.Second, Transport: c.conns}}
	return cl.Status(ctx)
}

// Leader returns the id of a node that says it leads with the highest
// ballot among the reachable nodes' answers, or 0. A node whose status
// cannot be fetched or read counts as no leader, as an unreachable one.
func (c *Cluster) Leader(ctx context.Context) int {
	type vote struct {
		id     int
		ballot api.Ballot
	}
	var mu sync.Mutex
	var leaders []vote
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		if c.IsDown(n.ID) {
			continue
		}
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			st, err := c.Status(ctx, id)
			if err != nil || st.Role != "leader" {
				return
			}
			b, err := api.ParseBallot(st.Promised)
			if err != nil {
				return
			}
			mu.Lock()
			leaders = append(leaders, vote{id, b})
			mu.Unlock()
		}(n.ID)
	}
	wg.Wait()
	if len(leaders) == 0 {
		return 0
	}
	sort.Slice(leaders, func(i, j int) bool { return leaders[j].ballot.Less(leaders[i].ballot) })
	return leaders[0].id
}

// WaitLeader polls until some node leads.
func (c *Cluster) WaitLeader(ctx context.Context, within time.Duration) (int, error) {
	deadline := time.Now().Add(within)
	for {
		if id := c.Leader(ctx); id != 0 {
			return id, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no node became leader within %v (see the node logs in %s)", within, filepath.Join(c.cfg.Dir, "nodes"))
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// IsDown reports whether node id is killed (not merely paused).
func (c *Cluster) IsDown(id int) bool {
	n := c.Node(id)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return true
	}
	select {
	case <-n.proc.Exited():
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL to node id and waits for it to exit.
func (c *Cluster) Kill(id int) error {
	n := c.Node(id)
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	if p == nil {
		return nil
	}
	if err := p.Kill(); err != nil {
		return fmt.Errorf("kill %s: %w", n.Name(), err)
	}
	return nil
}

// Restart starts node id again on its data directory, if it is down.
func (c *Cluster) Restart(ctx context.Context, id int) error {
	if !c.IsDown(id) || c.Retired(id) {
		return nil
	}
	n := c.Node(id)
	if err := c.launch(n); err != nil {
		return err
	}
	return c.waitHealthy(ctx, n)
}

// Pause stops node id with SIGSTOP.
func (c *Cluster) Pause(id int) error { return c.pauseResume(id, true) }

// Resume continues node id with SIGCONT.
func (c *Cluster) Resume(id int) error { return c.pauseResume(id, false) }

func (c *Cluster) pauseResume(id int, pause bool) error {
	n := c.Node(id)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return nil
	}
	var err error
	if pause {
		err = n.proc.Pause()
	} else {
		err = n.proc.Resume()
	}
	if err != nil {
		return fmt.Errorf("pause/resume %s: %w", n.Name(), err)
	}
	n.paused = pause
	return nil
}

// Close stops every node (resuming paused ones first) and closes the
// network layer. Every error is collected; nothing is left running.
func (c *Cluster) Close() error {
	c.conns.CloseIdleConnections()
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		n.mu.Lock()
		p := n.proc
		n.mu.Unlock()
		if p == nil {
			continue
		}
		wg.Add(1)
		go func(n *Node, p Process) {
			defer wg.Done()
			if err := p.Stop(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("stop %s: %w", n.Name(), err))
				mu.Unlock()
			}
		}(n, p)
	}
	wg.Wait()
	if err := c.cfg.Net.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close network fault layer: %w", err))
	}
	return errors.Join(errs...)
}
