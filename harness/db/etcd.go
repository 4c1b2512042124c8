package db

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/grpclog"

	"github.com/paxtest/paxtest/target/api"
)

// Etcd is a real etcd cluster (--db etcd): one etcd process per node, the
// release pinned (EtcdVersion), its clients etcd's official Go client.
// Registers map to get, put and a txn comparing the value (cas); lists (the
// append workload) to a JSON array rewritten by a txn comparing the key's
// mod revision. Its
// peers reach a node at the one URL it advertises, so the fault layer
// tells their connections apart by the X-PeerURLs header each request of
// etcd's raft transport carries (SharedPeers).
type Etcd struct {
	Binary string

	mu      sync.Mutex
	clients map[int]*clientv3.Client
	members map[uint64]int // etcd member id -> node, learnt from each node's own status
	urls    map[int]string // node -> the peer URL it advertises
	byURL   map[string]int
	joins   map[int]etcdJoin // node -> how it joins, since its last addition
	added   map[int]int      // node -> how often it was added
	dirs    map[int]string   // node -> its data directory
}

var (
	_ DB            = (*Etcd)(nil)
	_ DamageChecker = (*Etcd)(nil)
	_ SharedPeers   = (*Etcd)(nil)
)

// CheckedFiles are etcd's WAL segments and raft snapshots, whose every
// record carries a CRC. Its bbolt database checks no data page, so it is
// left alone: a flipped value there is served as stored.
func (e *Etcd) CheckedFiles() []string { return []string{"member/wal/*.wal", "member/snap/*.snap"} }

func init() {
	// the client's gRPC connections log every reconnection; a node that a
	// nemesis killed is not news
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, io.Discard))
	Register("etcd", func(o Options) (DB, error) {
		switch {
		case o.Config != "":
			return nil, fmt.Errorf("--db etcd takes no --db-config (%s)", o.Config)
		case len(o.Bugs) > 0:
			return nil, fmt.Errorf("--bug %s: bug switches are the built-in target's; etcd has none", strings.Join(o.Bugs, ","))
		}
		bin, err := EtcdBinary(o.Binary)
		if err != nil {
			return nil, err
		}
		return NewEtcd(bin), nil
	})
}

// NewEtcd returns the etcd DB whose nodes run bin.
func NewEtcd(bin string) *Etcd {
	return &Etcd{Binary: bin, clients: map[int]*clientv3.Client{}, members: map[uint64]int{},
		urls: map[int]string{}, byURL: map[string]int{}, joins: map[int]etcdJoin{}, added: map[int]int{}, dirs: map[int]string{}}
}

// Name is "etcd".
func (e *Etcd) Name() string { return "etcd" }

// etcdElectionTimeout is the election timeout the members run with
// (etcd's default, passed explicitly so the pace follows it).
const etcdElectionTimeout = time.Second

// Recovery is etcd's election timeout: a restarted member starts in
// under a second and a follower campaigns once the timeout passes
// without a leader.
func (e *Etcd) Recovery() time.Duration { return etcdElectionTimeout }

// Command starts node n as etcd member "n<id>", listening on its own peer
// address and advertising the one its peers dial. A member of the initial
// configuration starts a new cluster; a node added later (ChangeMembers)
// joins the existing one, with the configuration its addition returned,
// in a data directory of that addition's own.
func (e *Etcd) Command(n Node, peers []Peer, members []int) (Launch, error) {
	var initial []string
	self := ""
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range peers {
		url := "http://" + p.Dial
		e.urls[p.ID], e.byURL[url], e.dirs[p.ID] = url, p.ID, p.DataDir
		if p.ID == n.ID {
			self = p.Dial
		}
		if slices.Contains(members, p.ID) {
			initial = append(initial, fmt.Sprintf("%s=%s", p.Name(), url))
		}
	}
	if self == "" {
		return Launch{}, fmt.Errorf("start %s: it is not among its peers", n.Name())
	}
	dir, state, cluster := n.DataDir, "new", strings.Join(initial, ",")
	if j, ok := e.joins[n.ID]; ok {
		dir, state, cluster = j.dir, "existing", j.initial
	} else if !slices.Contains(members, n.ID) {
		return Launch{}, fmt.Errorf("start %s: it is no member yet, and an etcd node starts only once it was added", n.Name())
	}
	return Launch{Binary: e.Binary, Args: []string{
		"--name", n.Name(), "--data-dir", dir,
		"--listen-peer-urls", "http://" + n.PeerAddr,
		"--initial-advertise-peer-urls", "http://" + self,
		"--listen-client-urls", "http://" + n.ClientAddr,
		"--advertise-client-urls", "http://" + n.ClientAddr,
		"--initial-cluster", cluster,
		"--initial-cluster-state", state,
		"--initial-cluster-token", "paxtest",
		"--election-timeout", strconv.FormatInt(etcdElectionTimeout.Milliseconds(), 10),
		"--heartbeat-interval", strconv.FormatInt(etcdElectionTimeout.Milliseconds()/10, 10),
		"--log-level", "warn",
	}}, nil
}

// Ready reports whether the node's raft transport accepts connections.
// Its client port is no sign: etcd serves clients only once it has
// published itself through raft, which a node restarted on the minority
// side of a partition cannot do until the partition heals.
func (e *Etcd) Ready(ctx context.Context, n Node) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", n.PeerAddr)
	if err != nil {
		return fmt.Errorf("%s: %w", n.Name(), err)
	}
	return c.Close()
}

// Status is the node's own view (etcd's maintenance status): it leads if
// the leader it names is itself; its commit point is raft's committed
// index. A follower does not say what it holds beyond that, so its
// MaxSlot is its commit point; a leader's is the last index of its own
// log (its raft status, leaderLast), so a script can bind an entry a
// cut-off leader appended and could not commit.
func (e *Etcd) Status(ctx context.Context, n Node) (api.Status, error) {
	c, err := e.client(n)
	if err != nil {
		return api.Status{}, err
	}
	// bounded as the HTTP contract's status is: the client waits for a
	// connection, and a node that is down or cut off never gives it one
	ctx, cancel := context.WithTimeout(ctx, statusWithin)
	defer cancel()
	resp, err := c.Status(ctx, "http://"+n.ClientAddr)
	if err != nil {
		return api.Status{}, fmt.Errorf("status of %s: %w", n.Name(), err)
	}
	e.mu.Lock()
	e.members[resp.Header.MemberId] = n.ID
	leader := e.members[resp.Leader]
	e.mu.Unlock()
	st := api.Status{ID: uint64(n.ID), Role: "follower", Promised: fmt.Sprintf("%d.0", resp.RaftTerm),
		CommitPoint: resp.RaftIndex, Applied: resp.RaftAppliedIndex, MaxSlot: resp.RaftIndex}
	if resp.Leader != 0 && resp.Leader == resp.Header.MemberId {
		st.Role = "leader"
		leader = n.ID
		// a leader's raft status says how far its own log reaches;
		// unread, what it holds beyond its commit point stays unsaid
		if last, err := e.leaderLast(ctx, n, resp.Header.MemberId); err == nil {
			st.MaxSlot = max(st.MaxSlot, last)
		}
	}
	// resp.Errors are not broken invariants ("no leader" is etcd's state
	// during any partition): they are not reported as Violations
	st.Leader = uint64(leader)
	// the configuration as this member holds it (no change is pending
	// in etcd: one takes effect as it commits)
	if st.Members, err = e.memberIDs(ctx, c); err != nil {
		return api.Status{}, fmt.Errorf("members of %s: %w", n.Name(), err)
	}
	return st, nil
}

// leaderLast reads the last index of a leader's own log from its raft
// status (expvar "raft.status" at /debug/vars: the leader's progress of
// itself).
func (e *Etcd) leaderLast(ctx context.Context, n Node, self uint64) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.ClientAddr+"/debug/vars", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var vars struct {
		Raft struct {
			Progress map[string]struct {
				Match uint64 `json:"match"`
			} `json:"progress"`
		} `json:"raft.status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&vars); err != nil {
		return 0, fmt.Errorf("raft status of %s: %w", n.Name(), err)
	}
	p, ok := vars.Raft.Progress[strconv.FormatUint(self, 16)]
	if !ok {
		return 0, fmt.Errorf("raft status of %s: no progress of itself (not leading)", n.Name())
	}
	return p.Match, nil
}

// statusWithin bounds one status request.
const statusWithin = time.Second

// reconnect is how the clients dial a member again after losing it:
// gRPC's default backoff grows toward two minutes after repeated
// refusals, so a member restarted after a few kills would go unasked for
// long after it serves again; bounded, a client reaches it within a
// fraction of a second of its serving (as Jepsen opens a fresh client).
var reconnect = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 250 * time.Millisecond},
	MinConnectTimeout: time.Second,
}

// client is node n's etcd client, made once.
func (e *Etcd) client(n Node) (*clientv3.Client, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.clients[n.ID]; ok {
		return c, nil
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + n.ClientAddr}, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(reconnect)}})
	if err != nil {
		return nil, fmt.Errorf("etcd client of %s: %w", n.Name(), err)
	}
	e.clients[n.ID] = c
	return c, nil
}

// Client is an etcd client bound to node n.
func (e *Etcd) Client(n Node) Client { return etcdClient{e: e, n: n} }

// Close closes the clients.
func (e *Etcd) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for _, c := range e.clients {
		if err := c.Close(); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	e.clients = map[int]*clientv3.Client{}
	return errors.Join(errs...)
}

// PeerSender reads the sender's advertised peer URL from the X-PeerURLs
// header of the first request on a connection of etcd's raft transport.
func (e *Etcd) PeerSender(br *bufio.Reader) (string, error) {
	head, err := peekHead(br)
	if err != nil {
		return "", err
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return "", fmt.Errorf("not an HTTP request: %w", err)
	}
	urls := req.Header.Get("X-PeerURLs")
	if urls == "" {
		return "", errors.New("no X-PeerURLs header: not etcd's raft transport")
	}
	first, _, _ := strings.Cut(urls, ",")
	u, err := url.Parse(first)
	if err != nil {
		return "", fmt.Errorf("X-PeerURLs %q: %w", urls, err)
	}
	return u.Host, nil
}

// peekHead peeks at an HTTP request's head (up to the blank line).
func peekHead(br *bufio.Reader) ([]byte, error) {
	for n := 256; ; n *= 2 {
		n = min(n, br.Size())
		b, err := br.Peek(n)
		if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
			return b[:i+4], nil
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) && len(b) < n {
			return nil, fmt.Errorf("no request head: %w", err)
		}
		if n == br.Size() {
			return nil, errors.New("request head longer than the buffer")
		}
	}
}

// etcdClient performs the register workload's operations on one node.
type etcdClient struct {
	e *Etcd
	n Node
}

// errNotSent says the request was never sent (the workloads may send it
// elsewhere): the client had no connection to the node (it is down, or
// the way to it is cut), or an append failed at its read.
var errNotSent = fmt.Errorf("not sent: %w", syscall.ECONNREFUSED)

// Do maps a register operation onto etcd. A failed txn compare is a
// definite cas-mismatch; any error once the request may have been sent
// is returned as such (its outcome unknown): etcd's client does not
// resend a write after it may have left.
func (c etcdClient) Do(ctx context.Context, req api.Request) (api.Response, error) {
	cl, err := c.e.client(c.n)
	if err != nil {
		return api.Response{}, err
	}
	if st := cl.ActiveConnection().GetState(); st == connectivity.TransientFailure || st == connectivity.Shutdown {
		cl.ActiveConnection().Connect()
		return api.Response{}, fmt.Errorf("%s: %w", c.n.Name(), errNotSent)
	}
	switch req.Op {
	case api.OpPut:
		if _, err := cl.Put(ctx, req.Key, req.Value); err != nil {
			return api.Response{}, err
		}
		return api.Response{OK: true}, nil
	case api.OpGet:
		resp, err := cl.Get(ctx, req.Key)
		if err != nil {
			return api.Response{}, err
		}
		if len(resp.Kvs) == 0 {
			return api.Response{OK: true}, nil
		}
		return api.Response{OK: true, Found: true, Value: string(resp.Kvs[0].Value)}, nil
	case api.OpCAS:
		resp, err := cl.Txn(ctx).
			If(clientv3.Compare(clientv3.Value(req.Key), "=", req.From)).
			Then(clientv3.OpPut(req.Key, req.To)).Commit()
		if err != nil {
			return api.Response{}, err
		}
		if !resp.Succeeded {
			return api.Response{Error: api.ErrCASMismatch}, nil
		}
		return api.Response{OK: true}, nil
	case api.OpRead:
		resp, err := cl.Get(ctx, req.Key)
		if err != nil {
			return api.Response{}, err
		}
		list, _, err := etcdList(resp)
		if err != nil {
			return api.Response{Error: api.ErrUnknown, Detail: err.Error()}, nil
		}
		return api.Response{OK: true, List: list}, nil
	case api.OpAppend:
		return c.appendValue(ctx, cl, req)
	}
	return api.Response{Error: api.ErrBadRequest, Detail: fmt.Sprintf("--db etcd serves get, put, cas, append and read, not %s", req.Op)}, nil
}

// appendAttempts bounds how often an append retries a compare another
// writer made fail; each failed compare changed nothing.
const appendAttempts = 20

// appendValue appends to a key's list (a JSON array) with a txn that
// writes the longer list only if the key is unchanged since it was read
// (its mod revision; 0: absent), retrying a lost race. An error once the
// txn may have been sent leaves the outcome unknown.
func (c etcdClient) appendValue(ctx context.Context, cl *clientv3.Client, req api.Request) (api.Response, error) {
	for range appendAttempts {
		resp, err := cl.Get(ctx, req.Key)
		if err != nil {
			return api.Response{}, fmt.Errorf("%w: read before the append: %w", errNotSent, err)
		}
		list, rev, err := etcdList(resp)
		if err != nil {
			return api.Response{Error: api.ErrBadRequest, Detail: err.Error()}, nil
		}
		b, err := json.Marshal(append(list, req.Value))
		if err != nil {
			return api.Response{}, err
		}
		txn, err := cl.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(req.Key), "=", rev)).
			Then(clientv3.OpPut(req.Key, string(b))).Commit()
		if err != nil {
			return api.Response{}, err
		}
		if txn.Succeeded {
			return api.Response{OK: true}, nil
		}
	}
	return api.Response{Error: api.ErrBusy, Detail: fmt.Sprintf("the key changed under each of %d attempts", appendAttempts)}, nil
}

// etcdList is a key's list and its mod revision (an absent key: empty, 0).
func etcdList(resp *clientv3.GetResponse) ([]string, int64, error) {
	if len(resp.Kvs) == 0 {
		return []string{}, 0, nil
	}
	var list []string
	if err := json.Unmarshal(resp.Kvs[0].Value, &list); err != nil {
		return nil, 0, fmt.Errorf("the key holds %q, not a list", resp.Kvs[0].Value)
	}
	return list, resp.Kvs[0].ModRevision, nil
}
