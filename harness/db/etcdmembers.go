package db

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/paxtest/paxtest/target/api"
)

var (
	_ MemberChanger    = (*Etcd)(nil)
	_ AddedBeforeStart = (*Etcd)(nil)
)

// etcdJoin is how a node added to the running cluster starts: the
// configuration its addition returned, and a data directory of that
// addition's own (a member removed earlier cannot come back on its old
// one: etcd refuses a removed member's data).
type etcdJoin struct {
	initial string // --initial-cluster
	dir     string
}

// AddedBeforeStart: etcd admits a node only once it is in the
// configuration, and gives it that configuration on its first start.
func (e *Etcd) AddedBeforeStart() {}

// memberWithin bounds one membership change.
const memberWithin = 5 * time.Second

// ChangeMembers changes the configuration through etcd's member API, sent
// to node n (etcd forwards it to its leader). A replace is an add, then a
// remove: etcd changes one member per entry. A refusal etcd gives before
// proposing (an unhealthy cluster, an unknown member, a URL that is a
// member already) is definite; any other error leaves the outcome unknown.
func (e *Etcd) ChangeMembers(ctx context.Context, n Node, req api.MembersRequest) (api.MembersResponse, error) {
	c, err := e.client(n)
	if err != nil {
		return api.MembersResponse{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, memberWithin)
	defer cancel()
	switch req.Op {
	case api.ChangeAdd:
		return e.add(ctx, c, int(req.Node))
	case api.ChangeRemove:
		res, _, err := e.remove(ctx, c, int(req.Node))
		return res, err
	case api.ChangeReplace:
		res, err := e.add(ctx, c, int(req.With))
		if err != nil || !res.OK {
			return res, err
		}
		res, initial, err := e.remove(ctx, c, int(req.Node))
		if err == nil && res.OK {
			// the new member starts after the removal: it is given the
			// configuration without the removed one
			e.mu.Lock()
			j := e.joins[int(req.With)]
			j.initial = initial
			e.joins[int(req.With)] = j
			e.mu.Unlock()
		}
		return res, err
	}
	return api.MembersResponse{Error: api.ErrBadRequest, Detail: fmt.Sprintf("--db etcd changes members by add, remove and replace, not %q", req.Op)}, nil
}

// add adds node id and records how it is to start.
func (e *Etcd) add(ctx context.Context, c *clientv3.Client, id int) (api.MembersResponse, error) {
	e.mu.Lock()
	url, ok := e.urls[id]
	e.mu.Unlock()
	if !ok {
		return api.MembersResponse{Error: api.ErrBadRequest, Detail: fmt.Sprintf("n%d is no node of this cluster", id)}, nil
	}
	resp, err := c.MemberAdd(ctx, []string{url})
	if err != nil {
		return refusal(err)
	}
	ids, initial, err := e.configuration(resp.Members)
	if err != nil {
		return api.MembersResponse{Error: api.ErrUnknown, Detail: err.Error()}, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.joins[id] = etcdJoin{initial: initial, dir: filepath.Join(e.dirs[id], fmt.Sprintf("join-%d", e.added[id]+1))}
	e.added[id]++
	return api.MembersResponse{OK: true, Members: ids}, nil
}

// remove removes node id, found by its name or its peer URL, and returns
// the configuration left as an --initial-cluster.
func (e *Etcd) remove(ctx context.Context, c *clientv3.Client, id int) (api.MembersResponse, string, error) {
	list, err := c.MemberList(ctx)
	if err != nil {
		res, err := refusal(err)
		return res, "", err
	}
	var member uint64
	for _, m := range list.Members {
		if k, ok := e.nodeOf(m); ok && k == id {
			member = m.ID
		}
	}
	if member == 0 {
		return api.MembersResponse{Error: api.ErrBadRequest, Detail: fmt.Sprintf("n%d is no member", id)}, "", nil
	}
	resp, err := c.MemberRemove(ctx, member)
	if err != nil {
		res, err := refusal(err)
		return res, "", err
	}
	ids, initial, err := e.configuration(resp.Members)
	if err != nil {
		return api.MembersResponse{Error: api.ErrUnknown, Detail: err.Error()}, "", nil
	}
	return api.MembersResponse{OK: true, Members: ids}, initial, nil
}

// definiteRefusals are the member API's errors that etcd gives before it
// proposes the change.
var definiteRefusals = []error{rpctypes.ErrUnhealthy, rpctypes.ErrMemberNotFound, rpctypes.ErrPeerURLExist,
	rpctypes.ErrMemberBadURLs, rpctypes.ErrMemberNotEnoughStarted}

// refusal maps a member API error: definite, or unknown.
func refusal(err error) (api.MembersResponse, error) {
	for _, r := range definiteRefusals {
		if errors.Is(err, r) {
			return api.MembersResponse{Error: api.ErrBadRequest, Detail: err.Error()}, nil
		}
	}
	return api.MembersResponse{Error: api.ErrUnknown, Detail: err.Error()}, nil
}

// configuration maps etcd's members to node ids, and to the
// --initial-cluster a joining node is given.
func (e *Etcd) configuration(members []*pb.Member) ([]uint64, string, error) {
	var ids []uint64
	var initial []string
	for _, m := range members {
		id, ok := e.nodeOf(m)
		if !ok || len(m.PeerURLs) == 0 {
			return nil, "", fmt.Errorf("etcd member %x (%q, %v) is no node of this cluster", m.ID, m.Name, m.PeerURLs)
		}
		ids = append(ids, uint64(id))
		initial = append(initial, fmt.Sprintf("n%d=%s", id, m.PeerURLs[0]))
	}
	slices.Sort(ids)
	return ids, strings.Join(initial, ","), nil
}

// nodeOf is the node an etcd member is: by its name once it started, by
// its peer URL before.
func (e *Etcd) nodeOf(m *pb.Member) (int, bool) {
	if k, err := strconv.Atoi(strings.TrimPrefix(m.Name, "n")); err == nil && strings.HasPrefix(m.Name, "n") {
		return k, true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, u := range m.PeerURLs {
		if k, ok := e.byURL[u]; ok {
			return k, true
		}
	}
	return 0, false
}

// memberIDs is node n's own view of the configuration, as node ids.
func (e *Etcd) memberIDs(ctx context.Context, c *clientv3.Client) ([]uint64, error) {
	list, err := c.MemberList(ctx, clientv3.WithSerializable())
	if err != nil {
		return nil, err
	}
	ids, _, err := e.configuration(list.Members)
	return ids, err
}
