// Package paxos is the target's Multi-Paxos as a pure, deterministic state
// machine, in the style of etcd-io/raft: the caller feeds it messages
// (Step), clock ticks (Tick) and client commands (Propose), then collects a
// Ready that says which records to make durable, which messages to send once
// they are durable, and which chosen entries to apply, in order.
//
// It owns the protocol rules of ../shared/PROTOCOL.md and nothing else: it
// must not import net, os or time, start goroutines, or touch files. Storage
// (target/wal), sockets (target/transport), clocks and the key-value state
// machine (target/kv) live outside it. Departures from the rules that the bug
// switches enable are marked "BUG SWITCH" beside the rule they break.
package paxos

import (
	"bytes"
	"fmt"
)

// NodeID names an acceptor. IDs are positive.
type NodeID uint64

// Ballot is a proposal number: compared by Round first, then Node. A node
// never reuses a ballot (rule 4).
type Ballot struct {
	Round uint64
	Node  NodeID
}

// Less reports whether b orders strictly before o.
func (b Ballot) Less(o Ballot) bool {
	if b.Round != o.Round {
		return b.Round < o.Round
	}
	return b.Node < o.Node
}

// IsZero reports whether b is the zero ballot, below every real one.
func (b Ballot) IsZero() bool { return b == Ballot{} }

func (b Ballot) String() string { return fmt.Sprintf("%d.%d", b.Round, b.Node) }

// EntryKind says what a log entry carries.
type EntryKind uint8

const (
	// EntryNoop fills a hole during recovery; applying it changes nothing.
	EntryNoop EntryKind = iota
	// EntryCommand carries an opaque client command for the state machine.
	EntryCommand
	// EntryConfig changes the configuration (ConfigEntry); it governs the
	// slots from its own slot + α on.
	EntryConfig
)

// Entry is one log value.
type Entry struct {
	Kind EntryKind
	Data []byte
}

// Equal reports whether two entries are the same value.
func (e Entry) Equal(o Entry) bool { return e.Kind == o.Kind && bytes.Equal(e.Data, o.Data) }

// PValue is a slot's value with the ballot it was accepted (or chosen) at.
type PValue struct {
	Slot   uint64
	Ballot Ballot
	Entry  Entry
	Chosen bool // in a Promise: the acceptor knows this slot chosen
}

// MsgType names a message.
type MsgType uint8

const (
	MsgPrepare MsgType = iota + 1
	MsgPromise
	MsgAccept
	MsgAccepted
	MsgHeartbeat
	MsgHeartbeatAck
	MsgCatchUp
	MsgChosen
	MsgPreVote     // would you promise Ballot, and have you lost the leader too?
	MsgPreVoteResp // OK: yes; it changes no state on either side
)

var msgNames = map[MsgType]string{
	MsgPrepare: "Prepare", MsgPromise: "Promise", MsgAccept: "Accept", MsgAccepted: "Accepted",
	MsgHeartbeat: "Heartbeat", MsgHeartbeatAck: "HeartbeatAck", MsgCatchUp: "CatchUp", MsgChosen: "Chosen", MsgPreVote: "PreVote", MsgPreVoteResp: "PreVoteResp",
}

func (t MsgType) String() string {
	if s, ok := msgNames[t]; ok {
		return s
	}
	return fmt.Sprintf("MsgType(%d)", uint8(t))
}

// Message is everything that travels between nodes. Fields are used per
// type as the table in PROTOCOL.md says.
type Message struct {
	Type     MsgType
	From, To NodeID
	Ballot   Ballot // the ballot of the round the message belongs to
	// Slot: Prepare's first slot F, Accept/Accepted's slot, CatchUp's first slot.
	Slot  uint64
	Entry Entry // Accept
	// EntryBallot is set only under the reconfirm-old-ballot bug: the
	// ballot acceptors store with the entry instead of Ballot.
	EntryBallot Ballot
	Commit      uint64 // sender's commit point
	OK          bool
	Promised    Ballot   // on a refusal: the ballot the acceptor promised
	Entries     []PValue // Promise: accepted slots >= F; Chosen: chosen slots
}

// RecordType names a durable record.
type RecordType uint8

const (
	RecPromise RecordType = iota + 1 // Ballot is the new promised ballot
	RecAccept                        // Slot accepted at Ballot with Entry
	RecChosen                        // Slot chosen with Entry, learned at Ballot
)

// Record is a unit of durable state. The caller writes the Records of a
// Ready to stable storage before sending its Messages.
type Record struct {
	Type   RecordType
	Ballot Ballot
	Slot   uint64
	Entry  Entry
}

// State is what survives a restart: the fold of every record ever persisted.
type State struct {
	Promised Ballot
	Accepted map[uint64]PValue
	Chosen   map[uint64]PValue
}

// NewState returns an empty durable state.
func NewState() State {
	return State{Accepted: map[uint64]PValue{}, Chosen: map[uint64]PValue{}}
}

// Apply folds one record into the state, as replay on restart does.
func (s *State) Apply(r Record) {
	if s.Accepted == nil {
		s.Accepted = map[uint64]PValue{}
	}
	if s.Chosen == nil {
		s.Chosen = map[uint64]PValue{}
	}
	switch r.Type {
	case RecPromise:
		s.Promised = r.Ballot
	case RecAccept:
		s.Accepted[r.Slot] = PValue{Slot: r.Slot, Ballot: r.Ballot, Entry: r.Entry}
	case RecChosen:
		if _, ok := s.Chosen[r.Slot]; !ok {
			s.Chosen[r.Slot] = PValue{Slot: r.Slot, Ballot: r.Ballot, Entry: r.Entry, Chosen: true}
		}
	}
}

// Role is a node's part in the protocol.
type Role uint8

const (
	Follower Role = iota
	Candidate
	Leader
)

func (r Role) String() string {
	switch r {
	case Follower:
		return "follower"
	case Candidate:
		return "candidate"
	case Leader:
		return "leader"
	}
	return "unknown"
}

// Applied is one chosen entry handed to the state machine, in slot order.
type Applied struct {
	Slot  uint64
	Entry Entry
}

// Ready is the output of the state machine since the last call to Ready.
// The caller must: make Records durable, then send Messages (a message To
// this node itself is delivered back through Step), then apply Apply in
// order.
type Ready struct {
	Records  []Record
	Messages []Message
	Apply    []Applied
}

// Empty reports whether there is nothing to do.
func (r Ready) Empty() bool {
	return len(r.Records) == 0 && len(r.Messages) == 0 && len(r.Apply) == 0
}

// Status is a snapshot for the debug endpoint and the harness.
type Status struct {
	ID           NodeID
	Role         Role
	Promised     Ballot
	Leader       NodeID // 0 if unknown
	LeaderBallot Ballot
	CommitPoint  uint64
	Applied      uint64
	MaxSlot      uint64 // highest slot accepted or chosen here
	// Members is the configuration deciding the slot after the commit
	// point; Pending the newest chosen one when it is not in effect yet.
	Members   []NodeID
	Pending   []NodeID
	PendingAt uint64 // the slot Pending governs from
}

// Logger receives warnings the protocol must never hide (such as an Accept
// for a slot already known chosen with another value).
type Logger interface {
	Warn(msg string, args ...any)
}

type discard struct{}

func (discard) Warn(string, ...any) {}
