// Package cluster launches and stops a system's nodes as a cluster: ports
// and directories, health and leader waits, kill -9, pause, restart, spare
// nodes joining and retiring, and a teardown that leaves no process
// behind. Nodes are processes started through a Launcher (local children
// today, with Pdeathsig), on the command line the system under test gives
// (a db.DB), which also answers for each node's status.
//
// It owns processes and ports. It must not name a system (harness/db
// does), decide faults (nemesis/), generate operations (workloads/) or
// judge histories (checker/); it sees the network fault layer only as a
// network.Network.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/paxtest/paxtest/harness/db"
	"github.com/paxtest/paxtest/nemesis/network"
	"github.com/paxtest/paxtest/target/api"
)

// Mounter is a disk layer under the nodes' data directories.
type Mounter interface {
	Mount(id int, dir string) error
	Close() error // unmounts every node's
}

// Config configures a cluster.
type Config struct {
	Nodes int // the initial configuration: n1..n<Nodes>
	// Spares are nodes n<Nodes+1>.. outside the initial configuration,
	// with ports and directories ready; they run only once Join starts
	// them (a membership change adds them).
	Spares int
	// DB is the system under test: how its nodes start and what they say
	// of themselves. The cluster closes it (first) when it closes.
	DB       db.DB
	Env      []string // extra environment for nodes
	Dir      string   // the run directory: nodes/<id>.log, nodes/<id>/data
	Net      network.Network
	Launcher Launcher
	// Disk is a layer mounted on every node's data directory before it
	// first starts (harness/disk's lazy disk); the cluster unmounts it
	// (last) when it closes. nil: none.
	Disk Mounter
}

// Node is one member of the cluster.
type Node struct {
	db.Node
	LogPath string

	mu      sync.Mutex
	proc    Process
	paused  bool
	retired bool // a spare not started yet, or a node retired after its removal
}

// Cluster is a set of node processes.
type Cluster struct {
	cfg   Config
	nodes []*Node
	// shared: every node reaches a peer at one address, which the peer
	// advertises as its own too (db.SharedPeers)
	shared bool
}

// NewCluster allocates loopback ports and directories; it starts nothing.
func New(cfg Config) (*Cluster, error) {
	if cfg.Nodes < 1 {
		return nil, fmt.Errorf("a cluster needs at least one node, not %d", cfg.Nodes)
	}
	if cfg.DB == nil {
		return nil, errors.New("a cluster needs a system to run (a db.DB)")
	}
	if cfg.Net == nil {
		cfg.Net = &network.Direct{}
	}
	if cfg.Launcher == nil {
		cfg.Launcher = Local{}
	}
	c := &Cluster{cfg: cfg}
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
	pf, fixed := cfg.Launcher.(PortFinder)
	for id := 1; id <= cfg.Nodes+cfg.Spares; id++ {
		host := cfg.Net.Host(id)
		var pp, cp int
		var err error
		if fixed {
			pp, cp = pf.Ports(id)
		} else if pp, err = port(host); err == nil {
			cp, err = port(host)
		}
		if err != nil {
			return nil, err
		}
		n := &Node{
			Node: db.Node{ID: id, PeerAddr: net.JoinHostPort(host, strconv.Itoa(pp)), ClientAddr: net.JoinHostPort(host, strconv.Itoa(cp)),
				DataDir: filepath.Join(cfg.Dir, "nodes", fmt.Sprintf("n%d", id), "data")},
			LogPath: filepath.Join(cfg.Dir, "nodes", fmt.Sprintf("n%d.log", id)),
			retired: id > cfg.Nodes,
		}
		if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("create data dir of %s: %w", n.Name(), err)
		}
		if cfg.Disk != nil {
			if err := cfg.Disk.Mount(id, n.DataDir); err != nil {
				return nil, err
			}
		}
		if r, ok := cfg.Launcher.(Remote); ok {
			n.DataDir = r.DataDir(id, n.DataDir)
		}
		peers[id] = n.PeerAddr
		c.nodes = append(c.nodes, n)
	}
	if sp, ok := cfg.DB.(db.SharedPeers); ok {
		sh, ok := cfg.Net.(network.Sharer)
		if !ok {
			return nil, fmt.Errorf("this network fault layer cannot tell apart the peer connections of --db %s (its nodes share one address per peer): use --net proxy", cfg.DB.Name())
		}
		sh.Share(sp.PeerSender)
		c.shared = true
	}
	if err := cfg.Net.Setup(peers); err != nil {
		return nil, fmt.Errorf("set up the network fault layer: %w", err)
	}
	return c, nil
}

// PortFinder is a Launcher whose nodes run on hosts of their own, where
// this process cannot look for a free port: it names node id's ports.
type PortFinder interface {
	Ports(id int) (peer, client int)
}

// Remote is a Launcher whose nodes keep their data on hosts of their own:
// it names node id's data directory there, given the local one (which
// it fills with a copy of the remote one when it closes).
type Remote interface {
	DataDir(id int, local string) string
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

// AddedBeforeStart reports whether a spare must be in the configuration
// before it starts (db.AddedBeforeStart).
func (c *Cluster) AddedBeforeStart() bool {
	_, ok := c.cfg.DB.(db.AddedBeforeStart)
	return ok
}

// ChangeMembers sends a membership change to the leader, following
// not-leader hints, if the system under test can change its membership.
func (c *Cluster) ChangeMembers(ctx context.Context, req api.MembersRequest) (api.MembersResponse, error) {
	mc, ok := c.cfg.DB.(db.MemberChanger)
	if !ok {
		return api.MembersResponse{}, fmt.Errorf("--db %s cannot change its membership", c.cfg.DB.Name())
	}
	var to *Node
	if l := c.Leader(ctx); l != 0 {
		to = c.Node(l)
	}
	var res api.MembersResponse
	for try := 0; try < 5 && to != nil && ctx.Err() == nil; try++ {
		var err error
		if res, err = mc.ChangeMembers(ctx, to.Node, req); err != nil {
			// the change may have reached the leader: its outcome is unknown
			return api.MembersResponse{Error: api.ErrUnknown, Detail: err.Error()}, nil
		}
		if res.Error != api.ErrNotLeader || res.Leader == "" {
			return res, nil
		}
		to = c.byClientAddr(res.Leader)
	}
	if to == nil {
		return api.MembersResponse{Error: api.ErrNotLeader, Detail: "no leader"}, nil
	}
	return res, nil
}

// byClientAddr is the node serving clients at addr, or nil.
func (c *Cluster) byClientAddr(addr string) *Node {
	for _, n := range c.nodes {
		if n.ClientAddr == addr {
			return n
		}
	}
	return nil
}

// command is node n's launch: the system's command line, with every node
// as n reaches it (through the fault layer) and the initial configuration.
func (c *Cluster) command(n *Node) (db.Launch, error) {
	var peers []db.Peer
	var members []int
	for _, p := range c.nodes {
		dial := p.PeerAddr
		if p.ID != n.ID || c.shared {
			dial = c.cfg.Net.Dial(n.ID, p.ID)
		}
		peers = append(peers, db.Peer{Node: p.Node, Dial: dial})
		if p.ID <= c.cfg.Nodes {
			members = append(members, p.ID)
		}
	}
	return c.cfg.DB.Command(n.Node, peers, members)
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
	l, err := c.command(n)
	if err != nil {
		return fmt.Errorf("start node %s: %w", n.Name(), err)
	}
	p, err := c.cfg.Launcher.Launch(Spec{Name: n.Name(), Binary: l.Binary, Args: l.Args, Env: append(append([]string{}, c.cfg.Env...), l.Env...), LogPath: n.LogPath})
	if err != nil {
		return fmt.Errorf("start node %s: %w", n.Name(), err)
	}
	n.mu.Lock()
	n.proc, n.paused = p, false
	n.mu.Unlock()
	return nil
}

func (c *Cluster) waitHealthy(ctx context.Context, n *Node) error {
	deadline := time.Now().Add(startWithin)
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	for {
		if c.cfg.DB.Ready(ctx, n.Node) == nil {
			return nil
		}
		select {
		case <-p.Exited():
			return &StartError{Node: n.Name(), Exited: true, Err: p.ExitErr(), Log: n.LogPath, Tail: tail(n.LogPath, 8)}
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return &StartError{Node: n.Name(), Log: n.LogPath, Tail: tail(n.LogPath, 8)}
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

// Status asks node id for its status.
func (c *Cluster) Status(ctx context.Context, id int) (api.Status, error) {
	return c.cfg.DB.Status(ctx, c.Node(id).Node)
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
// network layer, the disk layer and then the Launcher, if it is an
// io.Closer (the hosts the nodes ran on). Every error is collected;
// nothing is left running.
func (c *Cluster) Close() error {
	var errs []error
	if err := c.cfg.DB.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close --db %s: %w", c.cfg.DB.Name(), err))
	}
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
	if c.cfg.Disk != nil {
		if err := c.cfg.Disk.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if cl, ok := c.cfg.Launcher.(io.Closer); ok {
		if err := cl.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
