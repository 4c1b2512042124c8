package paxos

import "sort"

// The leader's side of the protocol: phase 1 for new
// configurations, recovery, the window of proposals, counting acceptances,
// choosing and the commit point.

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

// ack reads what every acknowledgement to a leader says: a refusal at a
// higher ballot deposes it, an ack at its own ballot shows the sender
// alive. It reports whether m is an ack (of any ballot) to read further.
func (n *Node) ack(m Message) bool {
	if n.role != Leader {
		return false
	}
	if !m.OK {
		if n.ballot.Less(m.Promised) {
			n.becomeFollower()
		}
		return false
	}
	if m.Ballot == n.ballot {
		n.heard[m.From] = true
	}
	return true
}

func (n *Node) onAccepted(m Message) {
	if !n.ack(m) {
		return
	}
	if m.Ballot != n.ballot && !n.cfg.Bugs.CommitStaleAcks {
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

func (n *Node) onHeartbeatAck(m Message) { n.ack(m) }

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
