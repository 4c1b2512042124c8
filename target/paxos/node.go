package paxos

import (
	"errors"
	"fmt"
	"math/rand"

	"github.com/paxtest/paxtest/target/bugs"
)

// Config configures one node. Every node of a cluster must agree on Peers
// and Window.
type Config struct {
	ID NodeID
	// Peers is the initial configuration. A node outside it (one added
	// later) starts as a joining acceptor and learns the configuration
	// entries from the log.
	Peers []NodeID
	// ElectionTicks is the base election timeout; each wait is drawn from
	// [ElectionTicks, 2*ElectionTicks).
	ElectionTicks int
	// HeartbeatTicks is the leader's heartbeat interval; it must be smaller
	// than ElectionTicks.
	HeartbeatTicks int
	// Window (α) bounds how many slots beyond the commit point a leader
	// proposes in (rule 8), and a configuration entry chosen at slot i
	// governs the slots from i + α on.
	Window int
	// MaxQueue bounds commands waiting for the window; beyond it Propose
	// returns ErrBusy.
	MaxQueue int
	// CatchUpBatch bounds the entries of one Chosen message.
	CatchUpBatch int
	// Seed seeds the election-timeout randomness, so a run is reproducible.
	Seed   int64
	Bugs   bugs.Set
	Logger Logger
}

// Defaults of a node's timing and window, the one place they are written:
// the core fills them in for a zero Config, and `paxtest node` shows them
// as its flags' defaults.
const (
	DefaultElectionTicks  = 30 // with a 10 ms tick: elections time out after 300-600 ms
	DefaultHeartbeatTicks = 5
	DefaultWindow         = 64 // α
)

// ErrNotLeader is returned by Propose on a node that does not lead; the
// caller finds the leader hint in Status.
var ErrNotLeader = errors.New("paxos: not the leader")

// ErrBusy is returned by Propose when the leader's queue is full.
var ErrBusy = errors.New("paxos: proposal queue full")

func (c *Config) validate() error {
	if c.ID == 0 {
		return fmt.Errorf("paxos: node id must be positive")
	}
	seen := map[NodeID]bool{}
	for _, p := range c.Peers {
		if p == 0 || seen[p] {
			return fmt.Errorf("paxos: peer list %v has a zero or repeated id", c.Peers)
		}
		seen[p] = true
	}
	if len(c.Peers) == 0 {
		return fmt.Errorf("paxos: the initial configuration is empty")
	}
	if c.ElectionTicks <= 0 {
		c.ElectionTicks = DefaultElectionTicks
	}
	if c.HeartbeatTicks <= 0 {
		c.HeartbeatTicks = DefaultHeartbeatTicks
	}
	if c.HeartbeatTicks >= c.ElectionTicks {
		return fmt.Errorf("paxos: heartbeat ticks %d must be below election ticks %d", c.HeartbeatTicks, c.ElectionTicks)
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = 4096
	}
	if c.CatchUpBatch <= 0 {
		c.CatchUpBatch = 256
	}
	if c.Logger == nil {
		c.Logger = discard{}
	}
	return nil
}

type proposal struct {
	entry       Entry
	entryBallot Ballot // non-zero only under reconfirm-old-ballot
	sentAt      int64
}

// Node is one Multi-Paxos participant: acceptor always, candidate or leader
// when it campaigns. It is not safe for concurrent use.
type Node struct {
	cfg     Config
	rand    *rand.Rand
	changes []change // the initial configuration, then every chosen change, by slot

	st      State // promised, accepted, chosen: the durable part
	maxSlot uint64

	role         Role
	leader       NodeID
	leaderBallot Ballot
	maxRound     uint64
	commit       uint64
	applied      uint64

	now              int64
	electionElapsed  int
	electionTimeout  int
	heartbeatElapsed int

	// candidate and leader
	ballot      Ballot
	prepareFrom uint64
	promises    map[NodeID]Message

	// leader
	promisedBy     map[NodeID]bool   // who promised this leader's ballot
	preparedMoreAt int64             // when prepareMore last asked
	recovered      map[uint64]PValue // rule 5's values for slots not yet proposed
	recoverTo      uint64            // the highest slot recovery fixes
	props          map[uint64]*proposal
	next           uint64
	queue          []Entry
	heard          map[NodeID]bool
	quorumElapsed  int
	acks           map[uint64]map[NodeID]bool

	catchUpAt int64
	// learnedTo: every slot up to it was examined for rule 3 at leaderBallot
	learnedTo     uint64
	leaderHeardAt int64

	// pre-vote
	preBallot Ballot
	preVotes  map[NodeID]bool

	out Ready
}

// New returns a node that resumes from durable state st (NewState() for a
// fresh node). Its first Ready applies the chosen prefix again.
func New(cfg Config, st State) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if st.Accepted == nil || st.Chosen == nil {
		fresh := NewState()
		fresh.Promised = st.Promised
		for k, v := range st.Accepted {
			fresh.Accepted[k] = v
		}
		for k, v := range st.Chosen {
			fresh.Chosen[k] = v
		}
		st = fresh
	}
	n := &Node{
		cfg:       cfg,
		changes:   []change{{slot: 0, members: sortedIDs(cfg.Peers)}},
		rand:      rand.New(rand.NewSource(cfg.Seed ^ int64(cfg.ID)*7919)),
		st:        st,
		catchUpAt: -1 << 62,
		acks:      map[uint64]map[NodeID]bool{},
	}
	// Rule 4: on restart, maxRoundSeen = max(promised.round, highest accepted round).
	n.maxRound = st.Promised.Round
	for s, a := range st.Accepted {
		n.maxRound = max(n.maxRound, a.Ballot.Round)
		n.maxSlot = max(n.maxSlot, s)
	}
	for s, c := range st.Chosen {
		n.maxSlot = max(n.maxSlot, s)
		n.noteChange(s, c.Entry)
	}
	n.advanceCommit()
	n.resetElectionTimer()
	return n, nil
}

// Tick advances the node's logical clock by one tick.
func (n *Node) Tick() {
	n.now++
	if n.role == Leader {
		n.heartbeatElapsed++
		if n.heartbeatElapsed >= n.cfg.HeartbeatTicks {
			n.heartbeatElapsed = 0
			n.broadcastHeartbeat()
			n.resendStale()
		}
		// Rule 7: a leader that has not heard from a majority for an
		// election timeout steps down.
		n.quorumElapsed++
		if n.quorumElapsed >= n.cfg.ElectionTicks {
			n.quorumElapsed = 0
			heard := map[NodeID]bool{n.cfg.ID: true}
			for id := range n.heard {
				heard[id] = true
			}
			if !n.majorityOfAll(heard) || !n.mayCampaign() {
				n.becomeFollower()
				return
			}
			n.heard = map[NodeID]bool{}
		}
		return
	}
	n.electionElapsed++
	if n.electionElapsed >= n.electionTimeout {
		n.preCampaign()
	}
}

// preCampaign asks every node whether it too has lost the leader and would
// promise a fresh ballot, before this node raises any ballot (liveness
// only: a node that was cut off cannot depose a live leader when it comes
// back, because the others still hear from that leader and say no).
func (n *Node) preCampaign() {
	n.leader = 0 // our own timer fired: we have lost the leader too
	n.resetElectionTimer()
	if !n.mayCampaign() {
		// not a member of the latest configuration: it never leads, but it
		// tells the members how far the log goes, so that one that joined
		// with an empty log catches up, learns it is a member, and leads
		for _, p := range n.latest() {
			if p != n.cfg.ID {
				n.send(Message{Type: MsgChosen, To: p, Commit: n.commit})
			}
		}
		return
	}
	n.preBallot = Ballot{Round: n.maxRound + 1, Node: n.cfg.ID}
	n.preVotes = map[NodeID]bool{n.cfg.ID: true}
	if n.majorityOfAll(n.preVotes) {
		n.Campaign()
		return
	}
	for _, p := range n.audience() {
		if p != n.cfg.ID {
			n.send(Message{Type: MsgPreVote, To: p, Ballot: n.preBallot, Commit: n.commit})
		}
	}
}

func (n *Node) onPreVote(m Message) {
	if n.removed() {
		n.catchUpIfBehind(m)
		return
	}
	heardLeader := n.leader != 0 && n.leader != m.From && n.now-n.leaderHeardAt < int64(n.cfg.ElectionTicks)
	ok := n.st.Promised.Less(m.Ballot) && n.role != Leader && !heardLeader
	n.send(Message{Type: MsgPreVoteResp, To: m.From, Ballot: m.Ballot, OK: ok, Promised: n.st.Promised})
}

func (n *Node) onPreVoteResp(m Message) {
	if n.role == Leader || n.preVotes == nil || m.Ballot != n.preBallot || !m.OK {
		return
	}
	n.preVotes[m.From] = true
	if n.majorityOfAll(n.preVotes) {
		n.preVotes = nil
		n.Campaign()
	}
}

// Campaign starts phase 1 at a fresh ballot now (rule 4).
func (n *Node) Campaign() {
	n.preVotes = nil
	n.role = Candidate
	n.leader = 0
	n.ballot = Ballot{Round: n.maxRound + 1, Node: n.cfg.ID}
	n.maxRound = n.ballot.Round
	n.props, n.queue, n.heard = nil, nil, nil
	n.recovered, n.promisedBy = nil, nil
	n.setPromised(n.ballot)
	n.prepareFrom = n.commit + 1
	n.promises = map[NodeID]Message{}
	n.resetElectionTimer()
	for _, p := range n.audience() {
		n.send(Message{Type: MsgPrepare, To: p, Ballot: n.ballot, Slot: n.prepareFrom, Commit: n.commit})
	}
}

// Propose hands a client command to the leader. It is assigned a slot as
// soon as the window allows.
func (n *Node) Propose(e Entry) error {
	if n.role != Leader {
		return ErrNotLeader
	}
	if len(n.queue) >= n.cfg.MaxQueue {
		return ErrBusy
	}
	n.queue = append(n.queue, e)
	n.fillWindow()
	return nil
}

// Step feeds one received message into the node.
func (n *Node) Step(m Message) {
	n.maxRound = max(n.maxRound, m.Promised.Round)
	if m.Type != MsgPreVote && m.Type != MsgPreVoteResp {
		// a pre-vote's ballot is only a question; it must not inflate rounds
		n.maxRound = max(n.maxRound, m.Ballot.Round)
	}
	switch m.Type {
	case MsgPreVote:
		n.onPreVote(m)
	case MsgPreVoteResp:
		n.onPreVoteResp(m)
	case MsgPrepare:
		n.onPrepare(m)
	case MsgPromise:
		n.onPromise(m)
	case MsgAccept:
		n.onAccept(m)
	case MsgAccepted:
		n.onAccepted(m)
	case MsgHeartbeat:
		n.onHeartbeat(m)
	case MsgHeartbeatAck:
		n.onHeartbeatAck(m)
	case MsgCatchUp:
		n.onCatchUp(m)
	case MsgChosen:
		n.onChosen(m)
	}
}

// Ready returns everything produced since the last call and clears it.
func (n *Node) Ready() Ready {
	rd := n.out
	n.out = Ready{}
	return rd
}

// HasReady reports whether Ready would return anything.
func (n *Node) HasReady() bool { return !n.out.Empty() }

// Status returns a snapshot of the node's volatile and durable position.
func (n *Node) Status() Status {
	st := Status{
		ID: n.cfg.ID, Role: n.role, Promised: n.st.Promised, Leader: n.leader,
		LeaderBallot: n.leaderBallot, CommitPoint: n.commit, Applied: n.applied, MaxSlot: n.maxSlot,
		Members: n.members(n.commit + 1),
	}
	if last := n.changes[len(n.changes)-1]; last.slot != 0 && n.effect(last.slot) > n.commit+1 {
		st.Pending, st.PendingAt = last.members, n.effect(last.slot)
	}
	return st
}

// ChosenEntry returns the value this node knows chosen for slot s.
func (n *Node) ChosenEntry(s uint64) (PValue, bool) {
	pv, ok := n.st.Chosen[s]
	return pv, ok
}

// AcceptedEntry returns what this node accepted for slot s.
func (n *Node) AcceptedEntry(s uint64) (PValue, bool) {
	pv, ok := n.st.Accepted[s]
	return pv, ok
}

// LocalReadOK reports whether a read may be answered from this node's
// applied state without going through the log. The correct build never
// allows it: reads are log entries (rule 10).
func (n *Node) LocalReadOK() bool {
	// BUG SWITCH stale-read (breaks rule 10): a node that believes it leads
	// answers reads locally, without confirming that it still leads.
	return n.cfg.Bugs.StaleRead && n.role == Leader
}

// --- acceptor ---------------------------------------------------------------
