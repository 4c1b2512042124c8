package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/paxtest/paxtest/target/bugs"
	"github.com/paxtest/paxtest/target/paxos"
	"github.com/paxtest/paxtest/target/server"
)

type nodeOptions struct {
	ID             uint64
	DataDir        string
	ListenPeer     string
	ListenClient   string
	Peers          string
	PeerClients    string
	Tick           time.Duration
	ElectionTicks  int
	HeartbeatTicks int
	Window         int
	Members        string
	RequestTimeout time.Duration
	Seed           int64
	Bugs           []string
	LogLevel       string
}

func newCmdNode(stdout, stderr io.Writer) *cobra.Command {
	o := &nodeOptions{}
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run one node of the target Multi-Paxos key-value cluster",
		Long: `Run one node of the target: a Multi-Paxos acceptor and (when elected) leader with a
write-ahead log in --data-dir, peer traffic over TCP and a client port speaking HTTP/JSON:

  POST /v1/op      {"client":"c1","seq":1,"op":"put","key":"k","value":"v"}
                   ops: get, put, cas (from, to), append, read
  POST /v1/admin/members  {"op":"add","node":4}  (add, remove, replace with "with")
  GET  /debug/status, /debug/log?from=1&to=100, /health

A follower answers "not-leader" with the leader's client address as a hint.
SIGTERM or SIGINT stops the node cleanly; it also survives SIGKILL.`,
		Example: `  paxtest node --id 1 --data-dir /tmp/px/1 --listen-client 127.0.0.1:8001 \
    --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 \
    --peer-clients 1=127.0.0.1:8001,2=127.0.0.1:8002,3=127.0.0.1:8003`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runNode(o, stderr) },
	}
	f := cmd.Flags()
	f.Uint64Var(&o.ID, "id", 0, "this node's id, a positive integer that appears in --peers (required)")
	f.StringVar(&o.DataDir, "data-dir", "", "directory for this node's write-ahead log (required)")
	f.StringVar(&o.ListenPeer, "listen-peer", "", "address to accept peer connections on (default: this node's entry in --peers)")
	f.StringVar(&o.ListenClient, "listen-client", "127.0.0.1:0", "client port address")
	f.StringVar(&o.Peers, "peers", "", "every member as id=host:port, comma-separated: how this node dials each peer (required)")
	f.StringVar(&o.PeerClients, "peer-clients", "", "every member's client address as id=host:port, for leader hints")
	f.DurationVar(&o.Tick, "tick", server.DefaultTick, "length of one protocol tick")
	f.IntVar(&o.ElectionTicks, "election-ticks", paxos.DefaultElectionTicks, "base election timeout in ticks (each wait is random in [n, 2n))")
	f.IntVar(&o.HeartbeatTicks, "heartbeat-ticks", paxos.DefaultHeartbeatTicks, "leader heartbeat interval in ticks")
	f.IntVar(&o.Window, "window", paxos.DefaultWindow, "α: most slots in flight beyond the commit point; a configuration chosen at slot i decides slots from i+α on (the same on every node)")
	f.StringVar(&o.Members, "members", "", "the initial configuration as comma-separated ids (default: every id in --peers); a node outside it joins when a change adds it")
	f.DurationVar(&o.RequestTimeout, "request-timeout", 2*time.Second, "how long a client request waits before its outcome is reported unknown")
	f.Int64Var(&o.Seed, "seed", 0, "seed for election-timeout randomness (0: from the clock)")
	f.StringSliceVar(&o.Bugs, "bug", nil, "enable a bug switch (repeatable): "+strings.Join(bugs.Names(), ", "))
	f.StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}

// parseAddrMap parses "1=host:port,2=host:port".
func parseAddrMap(flag, s string) (map[paxos.NodeID]string, error) {
	out := map[paxos.NodeID]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.ParseUint(id, 10, 64)
		if !ok || err != nil || n == 0 || addr == "" {
			return nil, usagef("--%s: %q is not id=host:port with a positive id", flag, part)
		}
		if _, dup := out[paxos.NodeID(n)]; dup {
			return nil, usagef("--%s: id %d appears twice", flag, n)
		}
		out[paxos.NodeID(n)] = addr
	}
	return out, nil
}

func (o *nodeOptions) config(logger *slog.Logger) (server.Config, error) {
	if o.ID == 0 {
		return server.Config{}, usagef("--id is required and must be positive")
	}
	if o.DataDir == "" {
		return server.Config{}, usagef("--data-dir is required")
	}
	peers, err := parseAddrMap("peers", o.Peers)
	if err != nil {
		return server.Config{}, err
	}
	self, ok := peers[paxos.NodeID(o.ID)]
	if !ok {
		return server.Config{}, usagef("--peers %q must list this node's id %d", o.Peers, o.ID)
	}
	clients, err := parseAddrMap("peer-clients", o.PeerClients)
	if err != nil {
		return server.Config{}, err
	}
	b, err := bugs.Parse(o.Bugs...)
	if err != nil {
		return server.Config{}, usagef("--bug: %v", err)
	}
	if o.ElectionTicks <= o.HeartbeatTicks || o.HeartbeatTicks <= 0 {
		return server.Config{}, usagef("--heartbeat-ticks %d must be positive and below --election-ticks %d", o.HeartbeatTicks, o.ElectionTicks)
	}
	if o.Window <= 0 {
		return server.Config{}, usagef("--window must be positive")
	}
	var members []paxos.NodeID
	for id := range peers {
		members = append(members, id)
	}
	if o.Members != "" {
		m, err := paxos.ParseMembers([]byte(o.Members))
		if err != nil {
			return server.Config{}, usagef("--members %q: a comma-separated list of distinct positive ids", o.Members)
		}
		for _, id := range m {
			if _, ok := peers[id]; !ok {
				return server.Config{}, usagef("--members %q: node %d has no address in --peers", o.Members, id)
			}
		}
		members = m
	}
	sort.Slice(members, func(i, j int) bool { return members[i] < members[j] })
	listen := o.ListenPeer
	if listen == "" {
		listen = self
	}
	seed := o.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	return server.Config{
		ID: paxos.NodeID(o.ID), DataDir: o.DataDir, PeerListen: listen, ClientListen: o.ListenClient,
		Peers: peers, PeerClients: clients, Members: members, Tick: o.Tick, Election: o.ElectionTicks,
		Heartbeat: o.HeartbeatTicks, Window: o.Window, Timeout: o.RequestTimeout, Seed: seed, Bugs: b, Logger: logger,
	}, nil
}

func runNode(o *nodeOptions, stderr io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return usagef("--log-level %q: use debug, info, warn or error", o.LogLevel)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := o.config(logger)
	if err != nil {
		return err
	}
	srv, err := server.Start(cfg)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	select {
	case sig := <-sigs:
		logger.Info("stopping", "signal", sig.String())
		if err := srv.Stop(); err != nil {
			return fmt.Errorf("stop node %d: %w", cfg.ID, err)
		}
		return nil
	case err := <-srv.Fatal():
		err = fmt.Errorf("node %d: %w", cfg.ID, err)
		if serr := srv.Stop(); serr != nil {
			return errors.Join(err, fmt.Errorf("stop node %d: %w", cfg.ID, serr))
		}
		return err
	}
}
