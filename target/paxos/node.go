package paxos

import (
	"errors"
	"fmt"
	"math/rand"
	"sort"

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

// setPromised raises promised and persists it (rules 1, 2, 4).
func (n *Node) setPromised(b Ballot) {
	if b == n.st.Promised {
		return
	}
	n.st.Promised = b
	// BUG SWITCH volatile-promise (breaks rule 1): the promise is kept in
	// memory only, so a restarted acceptor promises again from zero.
	if n.cfg.Bugs.VolatilePromise {
		return
	}
	n.persist(Record{Type: RecPromise, Ballot: b})
}

// yield makes this node a follower of a message's sender when it carries a
// ballot above the one this node campaigns or leads with.
func (n *Node) yield(m Message) {
	if m.From == n.cfg.ID {
		return
	}
	if n.role != Follower && n.ballot.Less(m.Ballot) {
		n.becomeFollower()
	}
}

func (n *Node) onPrepare(m Message) {
	if n.removed() && m.From != n.cfg.ID {
		n.catchUpIfBehind(m)
		return
	}
	if m.Ballot.Less(n.st.Promised) {
		n.send(Message{Type: MsgPromise, To: m.From, Ballot: m.Ballot, OK: false, Promised: n.st.Promised})
		return
	}
	n.yield(m)
	n.setPromised(m.Ballot)
	if m.From != n.cfg.ID {
		n.leader = 0
		n.electionElapsed = 0
	}
	omit := n.cfg.Bugs.PrepareOmitsCommitted
	var entries []PValue
	for s, a := range n.st.Accepted {
		if s < m.Slot {
			continue
		}
		if c, ok := n.st.Chosen[s]; ok {
			// BUG SWITCH prepare-omits-committed (breaks rules 1, 5):
			// chosen slots are left out of the promise.
			if omit {
				continue
			}
			entries = append(entries, c)
			continue
		}
		entries = append(entries, a)
	}
	for s, c := range n.st.Chosen {
		if _, ok := n.st.Accepted[s]; ok || s < m.Slot || omit {
			continue
		}
		entries = append(entries, c)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Slot < entries[j].Slot })
	commit := n.commit
	if omit {
		// BUG SWITCH prepare-omits-committed: the commit point is hidden too.
		commit = min(commit, m.Slot-1)
	}
	n.send(Message{Type: MsgPromise, To: m.From, Ballot: m.Ballot, OK: true, Entries: entries, Commit: commit})
}

func (n *Node) onAccept(m Message) {
	if n.removed() && m.From != n.cfg.ID {
		n.catchUpIfBehind(m)
		return
	}
	if m.Ballot.Less(n.st.Promised) {
		n.send(Message{Type: MsgAccepted, To: m.From, Ballot: m.Ballot, Slot: m.Slot, OK: false, Promised: n.st.Promised})
		return
	}
	n.yield(m)
	n.setPromised(m.Ballot)
	if m.From != n.cfg.ID {
		n.heardFrom(m)
	}
	stored := m.Ballot
	// BUG SWITCH reconfirm-old-ballot (breaks rules 5, 6): a recovered entry
	// is stored with its original ballot, although the leader counts this
	// acceptance as a vote at its new ballot (the seeds' stage 3).
	if n.cfg.Bugs.ReconfirmOldBallot && !m.EntryBallot.IsZero() {
		stored = m.EntryBallot
	}
	if c, ok := n.st.Chosen[m.Slot]; ok && !c.Entry.Equal(m.Entry) {
		n.cfg.Logger.Warn("accept for a slot already chosen with another value",
			"slot", m.Slot, "ballot", m.Ballot.String(), "from", m.From)
	}
	n.st.Accepted[m.Slot] = PValue{Slot: m.Slot, Ballot: stored, Entry: m.Entry}
	n.maxSlot = max(n.maxSlot, m.Slot)
	n.persist(Record{Type: RecAccept, Ballot: stored, Slot: m.Slot, Entry: m.Entry})
	n.send(Message{Type: MsgAccepted, To: m.From, Ballot: m.Ballot, Slot: m.Slot, OK: true})
	if m.From != n.cfg.ID {
		if m.Slot <= n.learnedTo && m.Ballot == n.leaderBallot {
			n.learnSlot(m.Slot, m.Ballot) // accepted after the commit point passed it
		}
		n.learnCommit(m.Ballot, m.Commit, m.From)
	}
}

func (n *Node) onHeartbeat(m Message) {
	if m.Ballot.Less(n.st.Promised) {
		n.send(Message{Type: MsgHeartbeatAck, To: m.From, Ballot: m.Ballot, OK: false, Promised: n.st.Promised})
		return
	}
	n.yield(m)
	n.heardFrom(m)
	n.send(Message{Type: MsgHeartbeatAck, To: m.From, Ballot: m.Ballot, OK: true, Commit: n.commit})
	n.learnCommit(m.Ballot, m.Commit, m.From)
}

// heardFrom records a live leader: an Accept or Heartbeat at a ballot this
// node has not promised to refuse.
func (n *Node) heardFrom(m Message) {
	if m.Ballot != n.leaderBallot {
		// a new leader: rule 3 starts over for its ballot
		n.learnedTo = n.commit
	}
	n.leader, n.leaderBallot, n.electionElapsed, n.leaderHeardAt = m.From, m.Ballot, 0, n.now
}

// learnCommit applies rule 3: a slot at or below the leader's commit point is
// known chosen here only if it was accepted here at the leader's ballot;
// anything else is fetched with CatchUp. Each slot is examined once per
// leader ballot when the commit point passes it (learnedTo); a slot
// accepted later is examined by onAccept.
func (n *Node) learnCommit(b Ballot, c uint64, from NodeID) {
	if c <= n.commit {
		return
	}
	if b == n.leaderBallot {
		for s := max(n.learnedTo, n.commit) + 1; s <= min(c, n.maxSlot); s++ {
			n.learnSlot(s, b)
		}
		n.learnedTo = max(n.learnedTo, c)
	}
	n.advanceCommit()
	if n.commit < c && n.now-n.catchUpAt >= int64(n.cfg.HeartbeatTicks) {
		n.catchUpAt = n.now
		n.send(Message{Type: MsgCatchUp, To: from, Slot: n.commit + 1})
	}
}

// learnSlot marks slot s chosen if it was accepted here at the leader's
// ballot b (rule 3).
func (n *Node) learnSlot(s uint64, b Ballot) {
	if _, ok := n.st.Chosen[s]; ok {
		return
	}
	if a, ok := n.st.Accepted[s]; ok && a.Ballot == b {
		n.choose(s, a.Entry, b)
	}
}

// catchUpIfBehind: a node that believes it was removed still learns the
// log from one that knows more; it may find itself added back.
func (n *Node) catchUpIfBehind(m Message) {
	if m.Commit > n.commit && n.now-n.catchUpAt >= int64(n.cfg.HeartbeatTicks) {
		n.catchUpAt = n.now
		n.send(Message{Type: MsgCatchUp, To: m.From, Slot: n.commit + 1})
	}
}

func (n *Node) onCatchUp(m Message) {
	var entries []PValue
	for s := m.Slot; s <= n.maxSlot && len(entries) < n.cfg.CatchUpBatch; s++ {
		if c, ok := n.st.Chosen[s]; ok {
			entries = append(entries, c)
		}
	}
	if len(entries) > 0 {
		n.send(Message{Type: MsgChosen, To: m.From, Entries: entries, Commit: n.commit})
	}
}

func (n *Node) onChosen(m Message) {
	for _, e := range m.Entries {
		n.choose(e.Slot, e.Entry, e.Ballot)
	}
	n.advanceCommit()
	if (len(m.Entries) >= n.cfg.CatchUpBatch || len(m.Entries) == 0) && n.commit < m.Commit {
		n.catchUpAt = n.now
		n.send(Message{Type: MsgCatchUp, To: m.From, Slot: n.commit + 1})
	}
}

// --- candidate and leader ---------------------------------------------------

// prepareMore runs phase 1 again at this leader's ballot, from slot s on,
// with the acceptors of the configuration deciding s that have not promised
// yet (at most once per heartbeat interval).
func (n *Node) prepareMore(s uint64) {
	if n.preparedMoreAt != 0 && n.now-n.preparedMoreAt < int64(n.cfg.HeartbeatTicks) {
		return
	}
	n.preparedMoreAt = n.now
	for _, p := range n.members(s) {
		if !n.promisedBy[p] {
			n.send(Message{Type: MsgPrepare, To: p, Ballot: n.ballot, Slot: s, Commit: n.commit})
		}
	}
}

// onLatePromise folds a promise for this leader's ballot into what rule 5
// fixes for the slots not proposed yet: with the earlier promises it is a
// phase 1 for the new configuration's slots.
func (n *Node) onLatePromise(m Message) {
	n.promisedBy[m.From] = true
	for _, e := range m.Entries {
		if e.Slot < n.next {
			continue
		}
		n.recoverTo = max(n.recoverTo, e.Slot)
		cur, ok := n.recovered[e.Slot]
		switch {
		case ok && cur.Chosen:
		case e.Chosen, !ok, cur.Ballot.Less(e.Ballot):
			n.recovered[e.Slot] = e
		}
	}
	n.fillWindow()
}

func (n *Node) onPromise(m Message) {
	if n.role == Leader && m.Ballot == n.ballot && m.OK {
		n.onLatePromise(m)
		return
	}
	if n.role != Candidate || m.Ballot != n.ballot {
		return
	}
	if !m.OK {
		if n.ballot.Less(m.Promised) {
			n.becomeFollower()
		}
		return
	}
	n.promises[m.From] = m
	votes := map[NodeID]bool{}
	for id := range n.promises {
		votes[id] = true
	}
	if n.majorityOfAll(votes) {
		n.becomeLeader()
	}
}

// becomeLeader applies rule 5: fix every slot from F to H once, re-propose it
// at this node's own ballot, fill holes with no-ops.
func (n *Node) becomeLeader() {
	n.role, n.leader, n.leaderBallot = Leader, n.cfg.ID, n.ballot
	from := n.prepareFrom
	high := from - 1
	best := map[uint64]PValue{}
	voters := make([]NodeID, 0, len(n.promises))
	for id := range n.promises {
		voters = append(voters, id)
	}
	sort.Slice(voters, func(i, j int) bool { return voters[i] < voters[j] })
	for _, id := range voters {
		for _, e := range n.promises[id].Entries {
			high = max(high, e.Slot)
			cur, ok := best[e.Slot]
			switch {
			case cur.Chosen:
			case e.Chosen, !ok, cur.Ballot.Less(e.Ballot):
				best[e.Slot] = e
			}
		}
	}
	n.promisedBy = map[NodeID]bool{}
	for id := range n.promises {
		n.promisedBy[id] = true
	}
	n.promises = nil
	n.props = map[uint64]*proposal{}
	n.heard = map[NodeID]bool{}
	n.quorumElapsed, n.heartbeatElapsed = 0, 0
	// BUG SWITCH commit-stale-acks (breaks rule 6): the ack tally is keyed by
	// slot only and survives the change of ballot.
	if !n.cfg.Bugs.CommitStaleAcks {
		n.acks = map[uint64]map[NodeID]bool{}
	}
	// Slots F..H are re-proposed in order as the window allows (a recovered
	// configuration entry decides who decides the slots α after it).
	n.recovered, n.recoverTo = best, high
	n.next = max(from, n.commit+1)
	n.fillWindow()
	n.broadcastHeartbeat()
}

func (n *Node) propose(s uint64, e Entry, eb Ballot) {
	n.props[s] = &proposal{entry: e, entryBallot: eb, sentAt: n.now}
	for _, p := range n.audience() {
		n.sendAccept(p, s, n.props[s])
	}
}

func (n *Node) sendAccept(to NodeID, s uint64, p *proposal) {
	n.send(Message{Type: MsgAccept, To: to, Ballot: n.ballot, Slot: s, Entry: p.entry, EntryBallot: p.entryBallot, Commit: n.commit})
}

// fillWindow proposes, slot by slot up to commit + α (rule 8): first what
// recovery fixed (or a no-op for a hole), then queued commands. A slot whose
// configuration has acceptors this leader holds no majority of promises
// from makes it campaign again, so that phase 1 covers them.
func (n *Node) fillWindow() {
	for n.role == Leader && n.next <= n.commit+uint64(n.cfg.Window) {
		s := n.next
		if _, ok := n.st.Chosen[s]; ok {
			n.next++
			continue
		}
		var e Entry
		var eb Ballot
		switch pv, ok := n.recovered[s]; {
		case ok:
			e = pv.Entry
			if n.cfg.Bugs.ReconfirmOldBallot && !pv.Chosen {
				// BUG SWITCH reconfirm-old-ballot: the entry keeps its old ballot.
				eb = pv.Ballot
			}
		case s <= n.recoverTo:
			e = Entry{Kind: EntryNoop}
		case len(n.queue) > 0:
			e = n.queue[0]
		case s < n.effect(n.changes[len(n.changes)-1].slot):
			// no-ops push a chosen change into effect when no command comes
			e = Entry{Kind: EntryNoop}
		default:
			return
		}
		if !majorityOf(n.promisedBy, n.members(s)) {
			n.prepareMore(s)
			return
		}
		if s > n.recoverTo && len(n.queue) > 0 && e.Kind != EntryNoop {
			n.queue = n.queue[1:]
		}
		delete(n.recovered, s)
		n.propose(s, e, eb)
		n.next++
	}
}

func (n *Node) onAccepted(m Message) {
	if n.role != Leader {
		return
	}
	if !m.OK {
		if n.ballot.Less(m.Promised) {
			n.becomeFollower()
		}
		return
	}
	if m.Ballot == n.ballot {
		n.heard[m.From] = true
	} else if !n.cfg.Bugs.CommitStaleAcks {
		return // rule 6: acks for any other ballot count for nothing
	}
	p := n.props[m.Slot]
	// BUG SWITCH commit-stale-acks: the ack is tallied under its slot
	// whatever its ballot, even for a slot this leader is not proposing.
	if p == nil && !n.cfg.Bugs.CommitStaleAcks {
		return
	}
	tally := n.acks[m.Slot]
	if tally == nil {
		tally = map[NodeID]bool{}
		n.acks[m.Slot] = tally
	}
	tally[m.From] = true
	if p == nil || !n.decided(m.Slot, tally) {
		return
	}
	delete(n.props, m.Slot)
	delete(n.acks, m.Slot)
	n.choose(m.Slot, p.entry, n.ballot)
	n.advanceCommit()
}

// decided: slot s's acks hold a majority of the configuration deciding s,
// which is known only once every slot up to s - α is chosen (rule 8).
func (n *Node) decided(s uint64, tally map[NodeID]bool) bool {
	return s <= n.commit+uint64(n.cfg.Window) && majorityOf(tally, n.members(s))
}

// decideWaiting chooses proposals whose acks were complete before the
// configuration deciding them was known.
func (n *Node) decideWaiting() bool {
	var ready []uint64
	for s, p := range n.props {
		if p != nil && n.acks[s] != nil && n.decided(s, n.acks[s]) {
			ready = append(ready, s)
		}
	}
	sort.Slice(ready, func(i, j int) bool { return ready[i] < ready[j] })
	for _, s := range ready {
		p := n.props[s]
		delete(n.props, s)
		delete(n.acks, s)
		n.choose(s, p.entry, n.ballot)
	}
	return len(ready) > 0
}

func (n *Node) onHeartbeatAck(m Message) {
	if n.role != Leader {
		return
	}
	if !m.OK {
		if n.ballot.Less(m.Promised) {
			n.becomeFollower()
		}
		return
	}
	if m.Ballot == n.ballot {
		n.heard[m.From] = true
	}
}

func (n *Node) broadcastHeartbeat() {
	for _, p := range n.audience() {
		if p != n.cfg.ID {
			n.send(Message{Type: MsgHeartbeat, To: p, Ballot: n.ballot, Commit: n.commit})
		}
	}
}

// resendStale resends Accepts for slots still unchosen after two heartbeat
// intervals to the acceptors that have not acknowledged them (rule 6).
func (n *Node) resendStale() {
	slots := make([]uint64, 0, len(n.props))
	for s, p := range n.props {
		if n.now-p.sentAt >= int64(2*n.cfg.HeartbeatTicks) {
			slots = append(slots, s)
		}
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i] < slots[j] })
	for _, s := range slots {
		p := n.props[s]
		p.sentAt = n.now
		for _, peer := range n.audience() {
			if !n.acks[s][peer] {
				n.sendAccept(peer, s, p)
			}
		}
	}
}

func (n *Node) becomeFollower() {
	n.role = Follower
	n.leader = 0
	n.props, n.queue, n.promises, n.heard = nil, nil, nil, nil
	n.recovered, n.promisedBy = nil, nil
	n.resetElectionTimer()
}

// --- shared ------------------------------------------------------------------

// choose records that slot s holds e, chosen at ballot b. A slot already
// known chosen keeps its value; a conflict is logged loudly, never hidden.
func (n *Node) choose(s uint64, e Entry, b Ballot) {
	if c, ok := n.st.Chosen[s]; ok {
		if !c.Entry.Equal(e) {
			n.cfg.Logger.Warn("slot learned chosen with a second value; keeping the first",
				"slot", s, "kept_ballot", c.Ballot.String(), "other_ballot", b.String())
		}
		return
	}
	pv := PValue{Slot: s, Ballot: b, Entry: e, Chosen: true}
	n.st.Chosen[s] = pv
	n.noteChange(s, e)
	n.maxSlot = max(n.maxSlot, s)
	n.persist(Record{Type: RecChosen, Ballot: b, Slot: s, Entry: e})
}

// advanceCommit moves the commit point over every contiguous chosen slot and
// hands the newly applicable entries to the caller, strictly in order.
func (n *Node) advanceCommit() {
	for {
		if _, ok := n.st.Chosen[n.commit+1]; !ok {
			break
		}
		n.commit++
	}
	for n.applied < n.commit {
		n.applied++
		n.out.Apply = append(n.out.Apply, Applied{Slot: n.applied, Entry: n.st.Chosen[n.applied].Entry})
	}
	if n.role == Leader {
		if n.decideWaiting() {
			n.advanceCommit()
			return
		}
		n.fillWindow()
	}
}

func (n *Node) resetElectionTimer() {
	n.electionElapsed = 0
	n.electionTimeout = n.cfg.ElectionTicks + n.rand.Intn(n.cfg.ElectionTicks)
}

func (n *Node) persist(r Record) { n.out.Records = append(n.out.Records, r) }

func (n *Node) send(m Message) {
	m.From = n.cfg.ID
	n.out.Messages = append(n.out.Messages, m)
}
