package paxos

import "sort"

// The acceptor's side of the protocol: promises,
// accepts, heartbeats, learning what is chosen and catching up.

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
