package db

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Paxtest is the built-in target: `paxtest node`, one process per node,
// serving the HTTP contract. It is the default --db.
type Paxtest struct {
	httpNodes
	// Binary is the paxtest executable the nodes run.
	Binary string
	Bugs   []string
	Seed   int64
	// Timing of the nodes (0: the node's defaults).
	Tick           time.Duration
	ElectionTicks  int
	HeartbeatTicks int
	RequestTimeout time.Duration
	Window         int // α
}

var (
	_ DB            = (*Paxtest)(nil)
	_ LogReader     = (*Paxtest)(nil)
	_ MemberChanger = (*Paxtest)(nil)

	_ InvariantReporter = (*Paxtest)(nil)
	_ DamageChecker     = (*Paxtest)(nil)
)

// CheckedFiles: a node writes only its WAL, every record of it checksummed.
func (p *Paxtest) CheckedFiles() []string { return []string{"*"} }

// ReportsInvariants: a node's status carries the invariants it broke.
func (p *Paxtest) ReportsInvariants() {}

func init() {
	Register("paxtest", func(o Options) (DB, error) {
		if o.Config != "" {
			return nil, fmt.Errorf("--db paxtest takes no --db-config (%s): its nodes are this program's own", o.Config)
		}
		return NewPaxtest(Paxtest{Binary: o.Binary, Bugs: o.Bugs, Seed: o.Seed, RequestTimeout: o.RequestTimeout, Window: o.Window})
	})
}

// NewPaxtest completes p: its Binary defaults to this executable.
func NewPaxtest(p Paxtest) (*Paxtest, error) {
	bin, err := paxtestBinary(p.Binary)
	if err != nil {
		return nil, err
	}
	p.Binary, p.httpNodes = bin, newHTTPNodes()
	return &p, nil
}

// paxtestBinary is bin, or this executable when bin is "": the program
// the built-in node runs as.
func paxtestBinary(bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the paxtest binary: %w", err)
	}
	return exe, nil
}

// Name is "paxtest".
func (p *Paxtest) Name() string { return "paxtest" }

// Recovery is a second: a node starts in milliseconds, and an election
// times out after at most twice its base (paxos.DefaultElectionTicks
// ticks: 300-600 ms), with room for one more round.
func (p *Paxtest) Recovery() time.Duration { return time.Second }

// Command is `paxtest node` with n's addresses, its peers as n dials them,
// and the run's bug switches and timing.
func (p *Paxtest) Command(n Node, peers []Peer, members []int) (Launch, error) {
	var ps, clients []string
	for _, q := range peers {
		ps = append(ps, fmt.Sprintf("%d=%s", q.ID, q.Dial))
		clients = append(clients, fmt.Sprintf("%d=%s", q.ID, q.ClientAddr))
	}
	args := []string{"node", "--id", strconv.Itoa(n.ID), "--data-dir", n.DataDir,
		"--listen-peer", n.PeerAddr, "--listen-client", n.ClientAddr,
		"--peers", strings.Join(ps, ","), "--peer-clients", strings.Join(clients, ","),
		"--seed", strconv.FormatInt(p.Seed*1000+int64(n.ID), 10)}
	if len(p.Bugs) > 0 {
		args = append(args, "--bug", strings.Join(p.Bugs, ","))
	}
	if p.Tick > 0 {
		args = append(args, "--tick", p.Tick.String())
	}
	if p.ElectionTicks > 0 {
		args = append(args, "--election-ticks", strconv.Itoa(p.ElectionTicks))
	}
	if p.HeartbeatTicks > 0 {
		args = append(args, "--heartbeat-ticks", strconv.Itoa(p.HeartbeatTicks))
	}
	if p.RequestTimeout > 0 {
		args = append(args, "--request-timeout", p.RequestTimeout.String())
	}
	if p.Window > 0 {
		args = append(args, "--window", strconv.Itoa(p.Window))
	}
	if len(members) < len(peers) {
		// the initial configuration; spares join when a change adds them
		var ms []string
		for _, id := range members {
			ms = append(ms, strconv.Itoa(id))
		}
		args = append(args, "--members", strings.Join(ms, ","))
	}
	return Launch{Binary: p.Binary, Args: args}, nil
}
