package paxos

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/paxtest/paxtest/target/quorum"
)

// Membership (rule 8, the second source text's §2.5): a configuration is
// the set of acceptors whose majorities decide a slot. A change is an
// ordinary log entry (EntryConfig) chosen at slot i, and it governs slots
// from i + α on, where α is the window: a leader proposes slot s only when
// every slot up to s - α is known chosen, so every leader that proposes s
// agrees on the configuration that decides it. A leader proposes s only
// with promises from a majority of that configuration; when a change brings
// acceptors it has no promise from, it campaigns again.

// ErrConfigPending is returned by ProposeConfig while an earlier change is
// not yet in effect.
var ErrConfigPending = errors.New("paxos: a configuration change is still in progress")

// change is a configuration chosen at slot (0: the initial one).
type change struct {
	slot    uint64
	members []NodeID
}

// ConfigEntry is the log entry that changes the configuration to members.
func ConfigEntry(members []NodeID) Entry {
	m := sortedIDs(members)
	var s []string
	for _, id := range m {
		s = append(s, strconv.FormatUint(uint64(id), 10))
	}
	return Entry{Kind: EntryConfig, Data: []byte(strings.Join(s, ","))}
}

// ParseMembers decodes a configuration entry's members.
func ParseMembers(data []byte) ([]NodeID, error) {
	var out []NodeID
	seen := map[NodeID]bool{}
	for _, f := range strings.Split(string(data), ",") {
		v, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil || v == 0 || seen[NodeID(v)] {
			return nil, fmt.Errorf("paxos: bad configuration %q", data)
		}
		seen[NodeID(v)] = true
		out = append(out, NodeID(v))
	}
	return sortedIDs(out), nil
}

func sortedIDs(ids []NodeID) []NodeID {
	out := append([]NodeID(nil), ids...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// effect is the first slot a change chosen at slot i governs.
func (n *Node) effect(i uint64) uint64 {
	if i == 0 {
		return 0
	}
	// BUG SWITCH config-immediate (breaks rule 8): the change governs the
	// very next slot, not slot i + α, though slots up to i - 1 + α may be
	// in flight, decided by leaders that do not know slot i yet.
	if n.cfg.Bugs.ConfigImmediate {
		return i + 1
	}
	return i + uint64(n.cfg.Window)
}

// noteChange records a chosen configuration entry.
func (n *Node) noteChange(s uint64, e Entry) {
	if e.Kind != EntryConfig {
		return
	}
	m, err := ParseMembers(e.Data)
	if err != nil {
		n.cfg.Logger.Warn("chosen configuration entry does not parse", "slot", s, "err", err.Error())
		return
	}
	i := sort.Search(len(n.changes), func(k int) bool { return n.changes[k].slot >= s })
	if i < len(n.changes) && n.changes[i].slot == s {
		return
	}
	n.changes = append(n.changes, change{})
	copy(n.changes[i+1:], n.changes[i:])
	n.changes[i] = change{slot: s, members: m}
}

// members is the configuration that decides slot s, as far as this node
// knows the chosen changes.
func (n *Node) members(s uint64) []NodeID {
	cur := n.changes[0].members
	for _, c := range n.changes[1:] {
		if n.effect(c.slot) <= s {
			cur = c.members
		}
	}
	return cur
}

// latest is the newest configuration this node knows chosen.
func (n *Node) latest() []NodeID { return n.changes[len(n.changes)-1].members }

// activeConfigs lists the distinct configurations of slots commit+1 ..
// commit+α: the ones a leader proposing in its window must satisfy.
func (n *Node) activeConfigs() [][]NodeID {
	out := [][]NodeID{n.members(n.commit + 1)}
	for _, c := range n.changes[1:] {
		if e := n.effect(c.slot); e > n.commit+1 && e <= n.commit+uint64(n.cfg.Window) {
			out = append(out, c.members)
		}
	}
	return out
}

// audience is every acceptor of the active configurations, and of the
// latest one: whom prepares, accepts and heartbeats go to.
func (n *Node) audience() []NodeID {
	seen := map[NodeID]bool{}
	var out []NodeID
	for _, ms := range append(n.activeConfigs(), n.latest()) {
		for _, id := range ms {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return sortedIDs(out)
}

// majorityOf reports whether votes hold a majority of members.
func majorityOf(votes map[NodeID]bool, members []NodeID) bool {
	k := 0
	for _, id := range members {
		if votes[id] {
			k++
		}
	}
	return quorum.Reached(k, len(members))
}

// majorityOfAll reports whether votes hold a majority of every active
// configuration.
func (n *Node) majorityOfAll(votes map[NodeID]bool) bool {
	for _, ms := range n.activeConfigs() {
		if !majorityOf(votes, ms) {
			return false
		}
	}
	return true
}

func contains(ids []NodeID, x NodeID) bool {
	for _, id := range ids {
		if id == x {
			return true
		}
	}
	return false
}

// removed: a configuration in effect excludes this node, and no later one
// brings it back. A removed node neither votes, accepts nor campaigns.
func (n *Node) removed() bool {
	if len(n.changes) == 1 {
		return false // never changed: a node outside the initial set is joining
	}
	for _, ms := range append(n.activeConfigs(), n.latest()) {
		if contains(ms, n.cfg.ID) {
			return false
		}
	}
	return true
}

// mayCampaign: a member of the configuration deciding the next slot (it
// must be able to move the log on to where a newer one takes effect) or of
// the latest configuration leads; any other node never campaigns.
func (n *Node) mayCampaign() bool {
	return contains(n.latest(), n.cfg.ID) || contains(n.members(n.commit+1), n.cfg.ID)
}

// ProposeConfig proposes a change to members through this leader. Only one
// change may be in progress: the previous one must be in effect for the
// whole window.
func (n *Node) ProposeConfig(members []NodeID) error {
	if n.role != Leader {
		return ErrNotLeader
	}
	if len(members) == 0 {
		return fmt.Errorf("paxos: a configuration needs at least one member")
	}
	if _, err := ParseMembers(ConfigEntry(members).Data); err != nil {
		return err
	}
	if n.configPending() {
		return ErrConfigPending
	}
	return n.Propose(ConfigEntry(members))
}

// Latest is the newest configuration this node knows chosen, and the slot
// it was chosen at (0: the initial one).
func (n *Node) Latest() ([]NodeID, uint64) {
	c := n.changes[len(n.changes)-1]
	return append([]NodeID(nil), c.members...), c.slot
}

// Effect is the first slot a change chosen at slot i decides.
func (n *Node) Effect(i uint64) uint64 { return n.effect(i) }

// configPending: a change is proposed, or chosen but not in effect yet.
func (n *Node) configPending() bool {
	for _, p := range n.props {
		if p.entry.Kind == EntryConfig {
			return true
		}
	}
	for _, e := range n.queue {
		if e.Kind == EntryConfig {
			return true
		}
	}
	for _, e := range n.recovered {
		if e.Entry.Kind == EntryConfig {
			return true
		}
	}
	last := n.changes[len(n.changes)-1]
	return last.slot != 0 && n.effect(last.slot) > n.commit+1
}
