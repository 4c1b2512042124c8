// Package server runs one target node: it drives the pure protocol core
// (target/paxos) with a ticker, the write-ahead log (target/wal), the peer
// transport (target/transport) and the key-value state machine (target/kv),
// and serves the client port and debug endpoints over HTTP/JSON.
//
// The loop keeps the core's contract: records of a Ready are durable before
// its messages leave or its entries apply. It owns wiring and the client
// API; protocol rules belong to target/paxos.
package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/paxtest/paxtest/target/api"
	"github.com/paxtest/paxtest/target/bugs"
	"github.com/paxtest/paxtest/target/kv"
	"github.com/paxtest/paxtest/target/paxos"
	"github.com/paxtest/paxtest/target/transport"
	"github.com/paxtest/paxtest/target/wal"
)

// Config configures a node.
type Config struct {
	ID           paxos.NodeID
	DataDir      string
	PeerListen   string                  // where peers connect to this node
	ClientListen string                  // the client port
	Peers        map[paxos.NodeID]string // how this node dials every other node
	PeerClients  map[paxos.NodeID]string // every node's client address, for leader hints
	Members      []paxos.NodeID          // every member, this node included
	Tick         time.Duration
	Election     int // ticks
	Heartbeat    int // ticks
	Window       int
	Timeout      time.Duration // how long a client request may wait before "unknown"
	Seed         int64
	Bugs         bugs.Set
	Logger       *slog.Logger
}

type reqKey struct {
	client string
	seq    uint64
}

// Server is a running node.
type Server struct {
	cfg   Config
	log   *slog.Logger
	core  *paxos.Node
	wal   *wal.Log
	tr    *transport.Transport
	store *kv.Store
	http  *http.Server
	cln   net.Listener

	props   chan proposal
	queries chan func()
	stop    chan struct{}
	stopped chan struct{}
	fatal   chan error

	mu      sync.Mutex
	waiters map[reqKey]chan api.Response

	lastRole   paxos.Role // loop goroutine only
	lastLeader paxos.NodeID
	mon        *monitor // loop goroutine only
}

type proposal struct {
	data []byte
	err  chan error
}

// DefaultTick is the length of one protocol tick (paxos.DefaultElectionTicks
// of them make an election timeout).
const DefaultTick = 10 * time.Millisecond

// Start opens the WAL, replays it, and starts the transport, the loop and
// the client port.
func Start(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	log := cfg.Logger.With("node", cfg.ID)
	w, recs, err := wal.Open(cfg.DataDir, wal.Options{NoFsync: cfg.Bugs.NoFsync})
	if err != nil {
		return nil, fmt.Errorf("open data of node %d: %w", cfg.ID, err)
	}
	st := paxos.NewState()
	for _, r := range recs {
		st.Apply(r)
	}
	core, err := paxos.New(paxos.Config{
		ID: cfg.ID, Peers: cfg.Members, ElectionTicks: cfg.Election, HeartbeatTicks: cfg.Heartbeat,
		Window: cfg.Window, Seed: cfg.Seed, Bugs: cfg.Bugs, Logger: slogWarn{log},
	}, st)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("start node %d: %w", cfg.ID, err)
	}
	log.Info("replayed wal", "records", len(recs), "promised", st.Promised.String(), "chosen", len(st.Chosen), "bugs", cfg.Bugs.String())
	cln, err := net.Listen("tcp", cfg.ClientListen)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("listen for clients on %s: %w (is another node or program using the port?)", cfg.ClientListen, err)
	}
	tr, err := transport.New(transport.Config{ID: cfg.ID, Listen: cfg.PeerListen, Peers: cfg.Peers, Logger: log})
	if err != nil {
		cln.Close()
		w.Close()
		return nil, fmt.Errorf("%w (is another node or program using the port?)", err)
	}
	s := &Server{
		cfg: cfg, log: log, core: core, wal: w, tr: tr, store: kv.New(), cln: cln,
		props: make(chan proposal, 1024), queries: make(chan func()),
		stop: make(chan struct{}), stopped: make(chan struct{}), fatal: make(chan error, 1),
		waiters: map[reqKey]chan api.Response{}, mon: newMonitor(recs),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/op", s.handleOp)
	mux.HandleFunc("POST /v1/admin/members", s.handleMembers)
	mux.HandleFunc("GET /debug/status", s.handleStatus)
	mux.HandleFunc("GET /debug/log", s.handleLog)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go s.loop()
	go func() {
		if err := s.http.Serve(cln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.fail(fmt.Errorf("client port %s: %w", cfg.ClientListen, err))
		}
	}()
	log.Info("node started", "peer_addr", tr.Addr(), "client_addr", cln.Addr().String())
	return s, nil
}

// ClientAddr is the client port's address.
func (s *Server) ClientAddr() string { return s.cln.Addr().String() }

// Fatal delivers an error that stopped the node (a failed disk write).
func (s *Server) Fatal() <-chan error { return s.fatal }

func (s *Server) fail(err error) {
	select {
	case s.fatal <- err:
	default:
	}
}

// Stop shuts the node down cleanly, flushing the WAL.
func (s *Server) Stop() error {
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop client port: %w", err))
	}
	close(s.stop)
	<-s.stopped
	if err := s.tr.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := s.wal.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// loop is the only goroutine that touches the core and the store.
func (s *Server) loop() {
	defer close(s.stopped)
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.core.Tick()
		case m := <-s.tr.Recv():
			s.core.Step(m)
		recv: // batch what has arrived, so one fsync covers all of it
			for more := 0; more < 256; more++ {
				select {
				case m := <-s.tr.Recv():
					s.core.Step(m)
				default:
					break recv
				}
			}
		case p := <-s.props:
			s.propose(p)
		props:
			for more := 0; more < 256; more++ {
				select {
				case p := <-s.props:
					s.propose(p)
				default:
					break props
				}
			}
		case q := <-s.queries:
			q()
		}
		s.logRoleChange()
		if err := s.process(); err != nil {
			s.log.Error("stopping: storage failed", "err", err)
			s.fail(err)
			<-s.stop
			return
		}
	}
}

// logRoleChange logs elections and leader changes as they happen.
func (s *Server) logRoleChange() {
	st := s.core.Status()
	if st.Role == s.lastRole && st.Leader == s.lastLeader {
		return
	}
	s.lastRole, s.lastLeader = st.Role, st.Leader
	s.log.Info("role", "role", st.Role.String(), "leader", st.Leader, "promised", st.Promised.String(), "commit", st.CommitPoint)
}

func (s *Server) propose(p proposal) {
	p.err <- s.core.Propose(paxos.Entry{Kind: paxos.EntryCommand, Data: p.data})
}

// process plays the Ready contract until the core has nothing left.
func (s *Server) process() error {
	for s.core.HasReady() {
		rd := s.core.Ready()
		if err := s.wal.Append(rd.Records); err != nil {
			return err
		}
		for _, v := range s.mon.ready(rd, s.core.Status().Promised) {
			s.log.Error("invariant violated", "violation", v)
		}
		var self []paxos.Message
		for _, m := range rd.Messages {
			if m.To == s.cfg.ID {
				self = append(self, m)
			} else {
				s.tr.Send(m)
			}
		}
		for _, a := range rd.Apply {
			s.apply(a)
		}
		for _, m := range self {
			s.core.Step(m)
		}
	}
	return nil
}

func (s *Server) apply(a paxos.Applied) {
	if a.Entry.Kind != paxos.EntryCommand {
		return
	}
	req, err := kv.Decode(a.Entry.Data)
	if err != nil {
		s.log.Error("undecodable command in the log", "slot", a.Slot, "err", err)
		return
	}
	res := s.store.Apply(a.Slot, req)
	s.mu.Lock()
	ch, ok := s.waiters[reqKey{req.Client, req.Seq}]
	delete(s.waiters, reqKey{req.Client, req.Seq})
	s.mu.Unlock()
	if ok {
		ch <- res
	}
}

// query runs f on the loop goroutine.
func (s *Server) query(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case s.queries <- func() { f(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopped:
		return errors.New("node stopped")
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

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
		if err == nil && local {
			res.Local = true
			writeJSON(w, http.StatusOK, res)
			return
		}
	}
	data, err := kv.Encode(req)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, api.Response{Error: api.ErrBadRequest, Detail: err.Error()})
		return
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
		writeJSON(w, http.StatusServiceUnavailable, api.Response{Error: api.ErrBusy, Detail: "the node's proposal queue is full"})
		return
	}
	var perr error
	select {
	case perr = <-p.err:
	case <-ctx.Done():
		writeJSON(w, http.StatusGatewayTimeout, api.Response{Error: api.ErrUnknown, Detail: "timed out before the command was proposed"})
		return
	}
	switch {
	case errors.Is(perr, paxos.ErrNotLeader):
		var hint string
		_ = s.query(ctx, func() { hint = s.leaderHint(s.core.Status().Leader) })
		writeJSON(w, http.StatusServiceUnavailable, api.Response{Error: api.ErrNotLeader, Leader: hint})
		return
	case errors.Is(perr, paxos.ErrBusy):
		writeJSON(w, http.StatusServiceUnavailable, api.Response{Error: api.ErrBusy})
		return
	case perr != nil:
		writeJSON(w, http.StatusInternalServerError, api.Response{Error: api.ErrUnknown, Detail: perr.Error()})
		return
	}
	select {
	case res := <-ch:
		code := http.StatusOK
		if res.Error == api.ErrUnknown {
			code = http.StatusGatewayTimeout
		}
		writeJSON(w, code, res)
	case <-ctx.Done():
		// Rule 11: proposed but not acknowledged in time. The command may
		// still be chosen; the outcome is unknown.
		writeJSON(w, http.StatusGatewayTimeout, api.Response{Error: api.ErrUnknown, Detail: "proposed but not chosen within " + s.cfg.Timeout.String()})
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
	var out []api.LogEntry
	err := s.query(r.Context(), func() {
		st := s.core.Status()
		if to == 0 || to > st.MaxSlot {
			to = st.MaxSlot
		}
		to = min(to, from+maxLogPage-1)
		for i := from; i <= to; i++ {
			if pv, ok := s.core.ChosenEntry(i); ok {
				out = append(out, logEntry(pv))
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

type slogWarn struct{ l *slog.Logger }

func (w slogWarn) Warn(msg string, args ...any) { w.l.Warn(msg, args...) }
