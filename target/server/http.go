package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/paxtest/paxtest/target/api"
	"github.com/paxtest/paxtest/target/kv"
	"github.com/paxtest/paxtest/target/paxos"
)

func (s *Server) leaderHint(id paxos.NodeID) string {
	if id == 0 {
		return ""
	}
	return s.cfg.PeerClients[id]
}

func (s *Server) handleOp(w http.ResponseWriter, r *http.Request) {
	var req api.Request
	if err := decodeJSON(r, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, api.Response{Error: api.ErrBadRequest, Detail: err.Error()})
		return
	}
	if err := req.Validate(); err != nil {
		writeJSON(w, http.StatusBadRequest, api.Response{Error: api.ErrBadRequest, Detail: err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	if req.Op == api.OpGet || req.Op == api.OpRead {
		if res, ok := s.localRead(ctx, req); ok {
			writeJSON(w, http.StatusOK, res)
			return
		}
	}
	code, res := s.submit(ctx, req)
	writeJSON(w, code, res)
}

// localRead answers a read from this node's state when the core says it
// may (a leader within its lease, or a bug switch); otherwise the read
// goes through the log.
func (s *Server) localRead(ctx context.Context, req api.Request) (api.Response, bool) {
	var res api.Response
	var local bool
	err := s.query(ctx, func() {
		if local = s.core.LocalReadOK(); local {
			if req.Op == api.OpGet {
				res = s.store.Get(req.Key)
			} else {
				res = s.store.Read(req.Key)
			}
		}
	})
	if err != nil || !local {
		return api.Response{}, false
	}
	res.Local = true
	return res, true
}

// submit puts the command through the log and waits until it is applied.
// It answers with the HTTP status and the response.
func (s *Server) submit(ctx context.Context, req api.Request) (int, api.Response) {
	data, err := kv.Encode(req)
	if err != nil {
		return http.StatusBadRequest, api.Response{Error: api.ErrBadRequest, Detail: err.Error()}
	}
	key := reqKey{req.Client, req.Seq}
	ch := make(chan api.Response, 1)
	s.mu.Lock()
	s.waiters[key] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.waiters[key] == ch {
			delete(s.waiters, key)
		}
		s.mu.Unlock()
	}()
	p := proposal{data: data, err: make(chan error, 1)}
	select {
	case s.props <- p:
	case <-ctx.Done():
		return http.StatusServiceUnavailable, api.Response{Error: api.ErrBusy, Detail: "the node's proposal queue is full"}
	}
	var perr error
	select {
	case perr = <-p.err:
	case <-ctx.Done():
		return http.StatusGatewayTimeout, api.Response{Error: api.ErrUnknown, Detail: "timed out before the command was proposed"}
	}
	switch {
	case errors.Is(perr, paxos.ErrNotLeader):
		var hint string
		// the hint is advisory: without it the client tries another node
		_ = s.query(ctx, func() { hint = s.leaderHint(s.core.Status().Leader) })
		return http.StatusServiceUnavailable, api.Response{Error: api.ErrNotLeader, Leader: hint}
	case errors.Is(perr, paxos.ErrBusy):
		return http.StatusServiceUnavailable, api.Response{Error: api.ErrBusy}
	case perr != nil:
		return http.StatusInternalServerError, api.Response{Error: api.ErrUnknown, Detail: perr.Error()}
	}
	select {
	case res := <-ch:
		if res.Error == api.ErrUnknown {
			return http.StatusGatewayTimeout, res
		}
		return http.StatusOK, res
	case <-ctx.Done():
		// Rule 11: proposed but not acknowledged in time. The command may
		// still be chosen; the outcome is unknown.
		return http.StatusGatewayTimeout, api.Response{Error: api.ErrUnknown, Detail: "proposed but not chosen within " + s.cfg.Timeout.String()}
	}
}

// handleMembers proposes a membership change through this leader and
// answers once it is chosen (it decides slots from effective_at on).
func (s *Server) handleMembers(w http.ResponseWriter, r *http.Request) {
	var req api.MembersRequest
	if err := decodeJSON(r, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, api.MembersResponse{Error: api.ErrBadRequest, Detail: err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	var next []paxos.NodeID
	var bad, perr error
	var hint string
	err := s.query(ctx, func() {
		cur, _ := s.core.Latest()
		if next, bad = s.changed(cur, req); bad != nil {
			return
		}
		if perr = s.core.ProposeConfig(next); errors.Is(perr, paxos.ErrNotLeader) {
			hint = s.leaderHint(s.core.Status().Leader)
		}
	})
	switch {
	case err != nil:
		writeJSON(w, http.StatusGatewayTimeout, api.MembersResponse{Error: api.ErrUnknown, Detail: err.Error()})
		return
	case bad != nil:
		writeJSON(w, http.StatusBadRequest, api.MembersResponse{Error: api.ErrBadRequest, Detail: bad.Error()})
		return
	case errors.Is(perr, paxos.ErrNotLeader):
		writeJSON(w, http.StatusServiceUnavailable, api.MembersResponse{Error: api.ErrNotLeader, Leader: hint})
		return
	case errors.Is(perr, paxos.ErrConfigPending), errors.Is(perr, paxos.ErrBusy):
		writeJSON(w, http.StatusServiceUnavailable, api.MembersResponse{Error: api.ErrBusy, Detail: perr.Error()})
		return
	case perr != nil:
		writeJSON(w, http.StatusInternalServerError, api.MembersResponse{Error: api.ErrUnknown, Detail: perr.Error()})
		return
	}
	for {
		var latest []paxos.NodeID
		var slot, effect uint64
		if err := s.query(ctx, func() {
			latest, slot = s.core.Latest()
			effect = s.core.Effect(slot)
		}); err != nil {
			break
		}
		if slot > 0 && fmt.Sprint(latest) == fmt.Sprint(next) {
			writeJSON(w, http.StatusOK, api.MembersResponse{OK: true, Members: ids(next), Slot: slot, EffectAt: effect})
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
			continue
		}
		break
	}
	writeJSON(w, http.StatusGatewayTimeout, api.MembersResponse{Error: api.ErrUnknown, Members: ids(next),
		Detail: "proposed but not chosen within " + s.cfg.Timeout.String()})
}

// changed applies a change request to the configuration cur.
func (s *Server) changed(cur []paxos.NodeID, req api.MembersRequest) ([]paxos.NodeID, error) {
	in := map[paxos.NodeID]bool{}
	for _, id := range cur {
		in[id] = true
	}
	known := func(id uint64) error {
		if _, ok := s.cfg.Peers[paxos.NodeID(id)]; !ok && paxos.NodeID(id) != s.cfg.ID {
			return fmt.Errorf("node %d has no address in this node's --peers", id)
		}
		return nil
	}
	switch req.Op {
	case api.ChangeAdd:
		if err := known(req.Node); err != nil {
			return nil, err
		}
		if in[paxos.NodeID(req.Node)] {
			return nil, fmt.Errorf("node %d is already a member of %v", req.Node, cur)
		}
		in[paxos.NodeID(req.Node)] = true
	case api.ChangeRemove:
		if !in[paxos.NodeID(req.Node)] {
			return nil, fmt.Errorf("node %d is not a member of %v", req.Node, cur)
		}
		if len(cur) == 1 {
			return nil, fmt.Errorf("node %d is the last member", req.Node)
		}
		delete(in, paxos.NodeID(req.Node))
	case api.ChangeReplace:
		if err := known(req.With); err != nil {
			return nil, err
		}
		if !in[paxos.NodeID(req.Node)] || in[paxos.NodeID(req.With)] {
			return nil, fmt.Errorf("replace needs node %d in and node %d out of %v", req.Node, req.With, cur)
		}
		delete(in, paxos.NodeID(req.Node))
		in[paxos.NodeID(req.With)] = true
	default:
		return nil, fmt.Errorf("unknown op %q (accepted: add, remove, replace)", req.Op)
	}
	var out []paxos.NodeID
	for id := range in {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	var st paxos.Status
	var violations []string
	count := 0
	if err := s.query(r.Context(), func() {
		st = s.core.Status()
		violations, count = append([]string(nil), s.mon.violations...), s.mon.count
	}); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, api.Status{
		ID: uint64(st.ID), Role: st.Role.String(), Promised: st.Promised.String(), Leader: uint64(st.Leader),
		LeaderClient: s.leaderHint(st.Leader), LeaderBallot: st.LeaderBallot.String(),
		CommitPoint: st.CommitPoint, Applied: st.Applied, MaxSlot: st.MaxSlot, Bugs: s.cfg.Bugs.String(),
		Members: ids(st.Members), Pending: ids(st.Pending), PendingAt: st.PendingAt,
		Violations: violations, ViolationCount: count,
	})
}

// maxLogPage bounds one /debug/log answer.
const maxLogPage = 10000

func (s *Server) handleLog(w http.ResponseWriter, r *http.Request) {
	var from, to uint64 = 1, 0
	if _, err := fmt.Sscan(r.URL.Query().Get("from"), &from); err != nil && r.URL.Query().Has("from") {
		http.Error(w, "bad from: "+err.Error(), http.StatusBadRequest)
		return
	}
	if _, err := fmt.Sscan(r.URL.Query().Get("to"), &to); err != nil && r.URL.Query().Has("to") {
		http.Error(w, "bad to: "+err.Error(), http.StatusBadRequest)
		return
	}
	from = max(from, 1)
	values := r.URL.Query().Get("values") != "0"
	var out []api.LogEntry
	err := s.query(r.Context(), func() {
		st := s.core.Status()
		if to == 0 || to > st.MaxSlot {
			to = st.MaxSlot
		}
		to = min(to, from+maxLogPage-1)
		for i := from; i <= to; i++ {
			if pv, ok := s.core.ChosenEntry(i); ok {
				e := logEntry(pv)
				if !values {
					e.Value = ""
				}
				out = append(out, e)
			}
		}
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	if out == nil {
		out = []api.LogEntry{}
	}
	writeJSON(w, http.StatusOK, out)
}

func logEntry(pv paxos.PValue) api.LogEntry {
	kind := "command"
	switch pv.Entry.Kind {
	case paxos.EntryNoop:
		kind = "noop"
	case paxos.EntryConfig:
		kind = "config"
	}
	sum := sha256.Sum256(append([]byte{byte(pv.Entry.Kind)}, pv.Entry.Data...))
	return api.LogEntry{Index: pv.Slot, Ballot: pv.Ballot.String(), Kind: kind,
		Digest: hex.EncodeToString(sum[:8]), Value: string(pv.Entry.Data)}
}

func ids(ms []paxos.NodeID) []uint64 {
	if ms == nil {
		return nil
	}
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = uint64(m)
	}
	return out
}
