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
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
	w, recs, err := wal.Open(cfg.DataDir, wal.Options{NoFsync: cfg.Bugs.NoFsync, WriteNoFsync: cfg.Bugs.WriteNoFsync})
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
		return nil, errors.Join(fmt.Errorf("start node %d: %w", cfg.ID, err), w.Close())
	}
	log.Info("replayed wal", "records", len(recs), "promised", st.Promised.String(), "chosen", len(st.Chosen), "bugs", cfg.Bugs.String())
	cln, err := net.Listen("tcp", cfg.ClientListen)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("listen for clients on %s: %w (is another node or program using the port?)", cfg.ClientListen, err), w.Close())
	}
	tr, err := transport.New(transport.Config{ID: cfg.ID, Listen: cfg.PeerListen, Peers: cfg.Peers, Logger: log})
	if err != nil {
		cln.Close()
		return nil, errors.Join(fmt.Errorf("%w (is another node or program using the port?)", err), w.Close())
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
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
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

type slogWarn struct{ l *slog.Logger }

func (w slogWarn) Warn(msg string, args ...any) { w.l.Warn(msg, args...) }
