// Package db is the seam between paxtest and a system under test (Jepsen's
// "db"): how one of its nodes is started, when a started node is ready,
// what a node says of itself (its role, ballot and commit point, for the
// leader-aware faults and the scenarios' waits), and how a client speaks
// to it. Where the system offers them, a DB also reads what a node
// committed (LogReader, for the log-agreement check) and changes the
// membership (MemberChanger).
//
// The built-in target is one implementation (Paxtest, --db paxtest, the
// default); a system described by a file and speaking the target's HTTP
// contract is another (Exec, --db exec); a real etcd cluster a third
// (Etcd, --db etcd). Nothing outside this package names a system.
//
// It owns the interfaces, the node's place (Node) and the registry of
// systems. It must not start or signal nodes (harness/cluster does, from a
// DB's Command; the one process it runs is the Go toolchain, building a
// pinned system once), decide faults, generate operations or judge
// histories.
package db

import (
	"bufio"
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/paxtest/paxtest/target/api"
)

// Node is one node's place, chosen by the cluster: its id, the addresses
// it listens on and its data directory.
type Node struct {
	ID         int
	PeerAddr   string // where it listens to its peers
	ClientAddr string // where it serves clients
	DataDir    string
}

// Name is the node's name in logs and histories: "n1".
func (n Node) Name() string { return fmt.Sprintf("n%d", n.ID) }

// Peer is how a node reaches another: Dial is the address it dials (the
// network fault layer's, for any node but itself).
type Peer struct {
	Node
	Dial string
}

// Launch is how a node starts: a program, its arguments and extra
// environment.
type Launch struct {
	Binary string
	Args   []string
	Env    []string
}

// DB is a system under test.
type DB interface {
	// Name is the system's --db name.
	Name() string
	// Command is how node n starts, with every node of the cluster (n
	// included) as it reaches them; members are the ids of the initial
	// configuration.
	Command(n Node, peers []Peer, members []int) (Launch, error)
	// Ready probes node n once: nil if it serves clients now (the
	// cluster probes until it does, or its process exits).
	Ready(ctx context.Context, n Node) error
	// Status is what node n says of itself.
	Status(ctx context.Context, n Node) (api.Status, error)
	// Client returns a client of node n for the workloads' operations. It
	// answers as the target's client port does: an api.Response whose
	// error code says whether the operation certainly failed (not-leader,
	// busy, bad-request, cas-mismatch) or may have happened (unknown); a
	// transport error says the outcome is unknown unless it proves the
	// request never left (see workloads.MaybeSent).
	Client(n Node) Client
	// Recovery is how long a node of the system takes, in the usual
	// case, to serve again after a restart or a healed partition: its
	// start and an election. The run paces its faults by it (the
	// default interval between them, how long the mix waits for the
	// cluster to serve after a heal) and bounds by it how long a node
	// may take to serve after the final heal.
	Recovery() time.Duration
	// Close releases what the DB holds (idle connections); the nodes are
	// the cluster's to stop.
	Close() error
}

// Client performs one operation on one node.
type Client interface {
	Do(ctx context.Context, req api.Request) (api.Response, error)
}

// LogReader is a DB that can read a node's committed log: the entries of
// slots from..to (0: its last), with or without their values.
type LogReader interface {
	Log(ctx context.Context, n Node, from, to uint64, values bool) ([]api.LogEntry, error)
}

// MemberChanger is a DB whose membership can change: req sent to node n,
// which is the leader or hints at it.
type MemberChanger interface {
	ChangeMembers(ctx context.Context, n Node, req api.MembersRequest) (api.MembersResponse, error)
}

// AddedBeforeStart is a MemberChanger whose new member can start only once
// it is in the configuration (etcd admits no other); the membership nemesis
// then adds a spare before it starts it. Otherwise a spare starts first and
// learns of its addition (the built-in target: it can then catch up on the
// log before it counts).
type AddedBeforeStart interface {
	AddedBeforeStart()
}

// InvariantReporter is a DB whose nodes' status carries the invariants
// they saw themselves break (api.Status's Violations), which the
// node-invariants check judges. A system whose nodes report none (etcd)
// is not one: that check does not apply to its runs, rather than pass
// for want of evidence.
type InvariantReporter interface {
	ReportsInvariants()
}

// DamageChecker is a DB that names the files of a node's data it checks
// for damage (a checksum on every record), as globs relative to the node's
// data directory, slash-separated. The corruption nemesis damages only
// those: damage to a file the system never claimed to check says nothing
// about the system. A DB that is not one names none, and is not damaged
// unless a schedule names the file.
type DamageChecker interface {
	CheckedFiles() []string
}

// SharedPeers is a DB whose nodes all reach a peer at the one address it
// advertises (etcd's peer URLs) rather than at an address per link. The
// fault layer then gives one address per node and puts each connection on
// its link by the sender it names at its start: PeerSender reads, without
// consuming it (Peek), the address the sending node advertises.
type SharedPeers interface {
	PeerSender(br *bufio.Reader) (string, error)
}

// Factory builds a DB from the run's options.
type Factory func(o Options) (DB, error)

// Options are what a run tells every DB; a DB ignores what it has no use
// for, and refuses what it cannot honour.
type Options struct {
	// Binary is the program the nodes run ("" : the DB's own default).
	Binary string
	// Config is a DB's description file (--db-config).
	Config string
	// Bugs are the target's bug switches (only the built-in target has them).
	Bugs []string
	Seed int64
	// RequestTimeout bounds how long a node holds a client's request
	// before it answers unknown (0: the DB's default).
	RequestTimeout time.Duration
	// Window is the target's α (0: its default).
	Window int
}

var registry = map[string]Factory{}

// Register makes a DB available by name; it is called from init.
func Register(name string, f Factory) {
	if _, dup := registry[name]; dup {
		panic("db: " + name + " registered twice")
	}
	registry[name] = f
}

// Names lists the registered systems, sorted.
func Names() []string {
	var out []string
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Open builds the DB named name.
func Open(name string, o Options) (DB, error) {
	f, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown --db %q (accepted: %s)", name, strings.Join(Names(), ", "))
	}
	return f(o)
}
