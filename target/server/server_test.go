package server

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/target/api"
	"github.com/paxtest/paxtest/target/paxos"
)

// freeAddr is a loopback address with a port free now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// startNodes starts servers 1..n in this process; members is the initial
// configuration (nodes outside it join later).
func startNodes(t *testing.T, n int, members []paxos.NodeID) []*Server {
	t.Helper()
	peers, clients := map[paxos.NodeID]string{}, map[paxos.NodeID]string{}
	for id := paxos.NodeID(1); id <= paxos.NodeID(n); id++ {
		peers[id], clients[id] = freeAddr(t), freeAddr(t)
	}
	var out []*Server
	for id := paxos.NodeID(1); id <= paxos.NodeID(n); id++ {
		s, err := Start(Config{ID: id, DataDir: t.TempDir(), PeerListen: peers[id], ClientListen: clients[id], Peers: peers,
			PeerClients: clients, Members: members, Timeout: 2 * time.Second, Seed: int64(id)})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Stop()) })
		out = append(out, s)
	}
	return out
}

// call sends a request to a handler through httptest and decodes the answer.
func call[T any](t *testing.T, h http.HandlerFunc, path string, body any) (int, T) {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(b)))
	var out T
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out), rec.Body.String())
	return rec.Code, out
}

// waitLeader waits until s leads.
func waitLeader(t *testing.T, s *Server) {
	t.Helper()
	require.Eventually(t, func() bool {
		var st paxos.Status
		return s.query(t.Context(), func() { st = s.core.Status() }) == nil && st.Role == paxos.Leader
	}, 5*time.Second, 10*time.Millisecond, "node %d never led", s.cfg.ID)
}

func TestTheClientHandlerAppliesCommandsOnceAndAnswersEachOutcome(t *testing.T) {
	s := startNodes(t, 1, []paxos.NodeID{1})[0]
	waitLeader(t, s)
	op := func(req api.Request) (int, api.Response) { return call[api.Response](t, s.handleOp, "/v1/op", req) }
	for _, tc := range []struct {
		name string
		req  api.Request
		code int
		want api.Response
	}{
		{"put", api.Request{Client: "c", Seq: 1, Op: api.OpPut, Key: "k", Value: "1"}, 200, api.Response{OK: true}},
		{"get", api.Request{Client: "c", Seq: 2, Op: api.OpGet, Key: "k"}, 200, api.Response{OK: true, Found: true, Value: "1"}},
		{"cas that matches", api.Request{Client: "c", Seq: 3, Op: api.OpCAS, Key: "k", From: "1", To: "2"}, 200, api.Response{OK: true}},
		{"cas that does not", api.Request{Client: "c", Seq: 4, Op: api.OpCAS, Key: "k", From: "1", To: "3"}, 200, api.Response{Error: api.ErrCASMismatch}},
		{"append", api.Request{Client: "c", Seq: 5, Op: api.OpAppend, Key: "l", Value: "a"}, 200, api.Response{OK: true}},
		{"the same append retried", api.Request{Client: "c", Seq: 5, Op: api.OpAppend, Key: "l", Value: "a"}, 200, api.Response{OK: true}},
		{"read: the retry applied once", api.Request{Client: "c", Seq: 6, Op: api.OpRead, Key: "l"}, 200, api.Response{OK: true, List: []string{"a"}}},
		{"an unknown op", api.Request{Client: "c", Seq: 7, Op: "drop", Key: "l"}, 400, api.Response{Error: api.ErrBadRequest}},
	} {
		code, res := op(tc.req)
		require.Equal(t, tc.code, code, tc.name)
		res.Slot, res.Detail = 0, ""
		require.Equal(t, tc.want, res, tc.name)
	}
	rec := httptest.NewRecorder()
	s.handleOp(rec, httptest.NewRequest(http.MethodPost, "/v1/op", bytes.NewReader([]byte("{oops"))))
	require.Equal(t, 400, rec.Code)
	require.Contains(t, rec.Body.String(), api.ErrBadRequest)
}

func TestAFollowerAnswersNotLeaderWithTheLeadersAddress(t *testing.T) {
	nodes := startNodes(t, 3, []paxos.NodeID{1, 2, 3})
	var leader, follower *Server
	require.Eventually(t, func() bool {
		leader, follower = nil, nil
		for _, s := range nodes {
			var st paxos.Status
			if s.query(t.Context(), func() { st = s.core.Status() }) != nil {
				return false
			}
			if st.Role == paxos.Leader {
				leader = s
			} else if st.Leader != 0 {
				follower = s
			}
		}
		return leader != nil && follower != nil
	}, 10*time.Second, 20*time.Millisecond)
	code, res := call[api.Response](t, follower.handleOp, "/v1/op", api.Request{Client: "c", Seq: 1, Op: api.OpPut, Key: "k", Value: "1"})
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, api.ErrNotLeader, res.Error)
	require.Equal(t, leader.ClientAddr(), res.Leader)
}

func TestAMembershipChangeIsChosenAndNamesItsSlotAndEffect(t *testing.T) {
	nodes := startNodes(t, 2, []paxos.NodeID{1}) // node 2 starts outside, to be added
	waitLeader(t, nodes[0])
	change := func(req api.MembersRequest) (int, api.MembersResponse) {
		return call[api.MembersResponse](t, nodes[0].handleMembers, "/v1/admin/members", req)
	}
	for _, tc := range []struct {
		name string
		req  api.MembersRequest
		want string
	}{
		{"remove a node that is no member", api.MembersRequest{Op: api.ChangeRemove, Node: 2}, "node 2 is not a member of [1]"},
		{"remove the last member", api.MembersRequest{Op: api.ChangeRemove, Node: 1}, "node 1 is the last member"},
		{"add a node with no address", api.MembersRequest{Op: api.ChangeAdd, Node: 9}, "node 9 has no address"},
		{"an unknown op", api.MembersRequest{Op: "swap", Node: 2}, `unknown op "swap"`},
	} {
		code, res := change(tc.req)
		require.Equal(t, http.StatusBadRequest, code, tc.name)
		require.Equal(t, api.ErrBadRequest, res.Error, tc.name)
		require.Contains(t, res.Detail, tc.want, tc.name)
	}
	code, res := change(api.MembersRequest{Op: api.ChangeAdd, Node: 2})
	require.Equal(t, http.StatusOK, code, res.Detail)
	require.True(t, res.OK)
	require.Equal(t, []uint64{1, 2}, res.Members)
	require.Positive(t, res.Slot)
	require.Equal(t, res.Slot+paxos.DefaultWindow, res.EffectAt, "a change decides the slots from i + α on")
}

func TestTheLogWithoutValuesIsTheLogWithItsValuesLeftOut(t *testing.T) {
	s := startNodes(t, 1, []paxos.NodeID{1})[0]
	waitLeader(t, s)
	for seq := uint64(1); seq <= 3; seq++ {
		code, _ := call[api.Response](t, s.handleOp, "/v1/op", api.Request{Client: "c", Seq: seq, Op: api.OpPut, Key: "k", Value: "v"})
		require.Equal(t, 200, code)
	}
	cl := api.Client{Addr: s.ClientAddr()}
	full, err := cl.Log(t.Context(), 1, 0)
	require.NoError(t, err)
	digests, err := cl.LogDigests(t.Context(), 1, 0)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(full), 3)
	var commands int
	for i := range full {
		if full[i].Kind == "command" {
			commands++
			require.NotEmpty(t, full[i].Value)
		}
		full[i].Value = ""
	}
	require.Equal(t, 3, commands)
	require.Equal(t, full, digests)
}
