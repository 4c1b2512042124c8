package db

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/target/api"
	"github.com/paxtest/paxtest/target/paxos"
	"github.com/paxtest/paxtest/target/server"
)

func TestOpenRefusesAnUnknownSystemNamingTheAcceptedOnes(t *testing.T) {
	_, err := Open("cassandra", Options{})
	require.ErrorContains(t, err, `unknown --db "cassandra" (accepted: `)
	require.Contains(t, Names(), "paxtest")
	_, err = Open("paxtest", Options{Config: "x.json"})
	require.ErrorContains(t, err, "takes no --db-config (x.json)")
}

func flag(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

func TestThePaxtestCommandNamesEveryPeerAsTheNodeDialsItAndTheInitialConfiguration(t *testing.T) {
	peers := []Peer{
		{Node: Node{ID: 1, PeerAddr: "127.0.0.1:1001", ClientAddr: "127.0.0.1:2001"}, Dial: "127.0.0.1:1001"},
		{Node: Node{ID: 2, PeerAddr: "127.0.0.1:1002", ClientAddr: "127.0.0.1:2002"}, Dial: "127.0.0.1:3002"},
		{Node: Node{ID: 3, PeerAddr: "127.0.0.1:1003", ClientAddr: "127.0.0.1:2003"}, Dial: "127.0.0.1:3003"},
	}
	for _, tc := range []struct {
		name        string
		p           Paxtest
		members     []int
		wantMembers string // "" : no --members (every node is one)
		wantBug     string
	}{
		{"every node a member", Paxtest{}, []int{1, 2, 3}, "", ""},
		{"a spare outside the configuration", Paxtest{}, []int{1, 2}, "1,2", ""},
		{"bug switches passed on", Paxtest{Bugs: []string{"stale-read", "no-fsync"}}, []int{1, 2, 3}, "", "stale-read,no-fsync"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.Binary = "/bin/paxtest"
			p, err := NewPaxtest(tc.p)
			require.NoError(t, err)
			l, err := p.Command(peers[0].Node, peers, tc.members)
			require.NoError(t, err)
			require.Equal(t, "/bin/paxtest", l.Binary)
			require.Equal(t, "node", l.Args[0])
			got, _ := flag(l.Args, "--peers")
			require.Equal(t, "1=127.0.0.1:1001,2=127.0.0.1:3002,3=127.0.0.1:3003", got, "peers as n1 dials them")
			got, _ = flag(l.Args, "--peer-clients")
			require.Equal(t, "1=127.0.0.1:2001,2=127.0.0.1:2002,3=127.0.0.1:2003", got)
			got, ok := flag(l.Args, "--members")
			require.Equal(t, tc.wantMembers != "", ok)
			require.Equal(t, tc.wantMembers, got)
			got, ok = flag(l.Args, "--bug")
			require.Equal(t, tc.wantBug != "", ok)
			require.Equal(t, tc.wantBug, got)
		})
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// The built-in target, run in this process, answers every call of the
// seam through the HTTP contract.
func TestTheBuiltInTargetAnswersEveryCallOfTheSeam(t *testing.T) {
	peer, client := freeAddr(t), freeAddr(t)
	s, err := server.Start(server.Config{ID: 1, DataDir: t.TempDir(), PeerListen: peer, ClientListen: client,
		Peers: map[paxos.NodeID]string{1: peer}, PeerClients: map[paxos.NodeID]string{1: client}, Members: []paxos.NodeID{1},
		Timeout: 2 * time.Second, Seed: 1})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Stop()) })
	p, err := NewPaxtest(Paxtest{Binary: "/bin/paxtest"})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	ctx := context.Background()
	n := Node{ID: 1, PeerAddr: peer, ClientAddr: client}

	require.NoError(t, p.Ready(ctx, n))
	require.Eventually(t, func() bool {
		st, err := p.Status(ctx, n)
		return err == nil && st.Role == "leader"
	}, 10*time.Second, 10*time.Millisecond)
	res, err := p.Client(n).Do(ctx, api.Request{Client: "c", Seq: 1, Op: api.OpPut, Key: "k", Value: "v1"})
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res)
	res, err = p.Client(n).Do(ctx, api.Request{Client: "c", Seq: 2, Op: api.OpCAS, Key: "k", From: "v0", To: "v2"})
	require.NoError(t, err)
	require.Equal(t, api.ErrCASMismatch, res.Error, "a definite failure keeps its code")
	res, err = p.Client(n).Do(ctx, api.Request{Client: "c", Seq: 3, Op: api.OpGet, Key: "k"})
	require.NoError(t, err)
	require.Equal(t, "v1", res.Value)

	withValues, err := p.Log(ctx, n, 1, 0, true)
	require.NoError(t, err)
	digests, err := p.Log(ctx, n, 1, 0, false)
	require.NoError(t, err)
	require.Equal(t, len(withValues), len(digests))
	found := false
	for i := range withValues {
		require.Equal(t, withValues[i].Digest, digests[i].Digest)
		require.Empty(t, digests[i].Value, "a digest read carries no value")
		found = found || strings.Contains(withValues[i].Value, `"v1"`)
	}
	require.True(t, found, "the put is in the log, with its value: %+v", withValues)

	require.Error(t, p.Ready(ctx, Node{ID: 2, ClientAddr: freeAddr(t)}), "nobody serves there")
}

func writeConfig(t *testing.T, text string) string {
	p := filepath.Join(t.TempDir(), "db.json")
	require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	return p
}

func TestExecRefusesADescriptionItDoesNotUnderstandNamingTheField(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		bugs       []string
		want       string
	}{
		{"an unknown field", `{"command":["x"],"logs":true}`, nil, `unknown field "logs"`},
		{"no command", `{"log":true}`, nil, "field command: empty"},
		{"an unknown placeholder", `{"command":["x","--id={node}"]}`, nil, `field command[1]: "--id={node}" holds an unknown placeholder`},
		{"an unknown placeholder in env", `{"command":["x"],"env":["A={dir}"]}`, nil, `field env[0]`},
		{"bug switches with nowhere to go", `{"command":["x","{id}"]}`, []string{"stale-read"}, "has no {bugs} to pass them to"},
		{"not JSON", `command: x`, nil, "invalid character"},
		{"a bad glob of checked files", `{"command":["x"],"checked_files":["wal/[.log"]}`, nil, `field checked_files[0]: "wal/[.log" is not a glob`},
		{"an absolute checked file", `{"command":["x"],"checked_files":["*.log","/var/wal"]}`, nil, `field checked_files[1]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, tc.text)
			_, err := Open("exec", Options{Config: p, Bugs: tc.bugs})
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, p, "the error names the file")
		})
	}
	_, err := Open("exec", Options{})
	require.ErrorContains(t, err, "needs --db-config FILE")
	_, err = Open("exec", Options{Config: filepath.Join(t.TempDir(), "missing.json")})
	require.ErrorContains(t, err, "missing.json")
}

// The corruption nemesis damages only what a system says it checks: the
// built-in target every file it writes (its WAL), etcd its WAL segments and
// snapshots, an exec system its checked_files, and a system that names
// none is not damaged at random.
func TestEachSystemNamesTheFilesItChecksForDamage(t *testing.T) {
	checked := func(d DB) []string {
		if c, ok := d.(DamageChecker); ok {
			return c.CheckedFiles()
		}
		return nil
	}
	require.Equal(t, []string{"*"}, checked(&Paxtest{}))
	require.Equal(t, []string{"member/wal/*.wal", "member/snap/*.snap"}, checked(&Etcd{}))
	d, err := Open("exec", Options{Config: writeConfig(t, `{"command":["x"],"checked_files":["wal/*.log"]}`)})
	require.NoError(t, err)
	require.Equal(t, []string{"wal/*.log"}, checked(d))
	d, err = Open("exec", Options{Config: writeConfig(t, `{"command":["x"],"log":true}`)})
	require.NoError(t, err)
	require.Empty(t, checked(d))
}

func TestExecFillsEveryPlaceholderForTheNode(t *testing.T) {
	p := writeConfig(t, `{"command":["{paxtest}","node","--id={id}","{data-dir}","{peer-addr}","{client-addr}","{peers}","{peer-clients}","{members}","{seed}","{bugs}"],
		"env":["NODE={id}"]}`)
	d, err := Open("exec", Options{Config: p, Binary: "/bin/px", Seed: 7, Bugs: []string{"no-fsync"}})
	require.NoError(t, err)
	peers := []Peer{
		{Node: Node{ID: 1, PeerAddr: "h:1", ClientAddr: "h:11", DataDir: "/d1"}, Dial: "h:1"},
		{Node: Node{ID: 2, PeerAddr: "h:2", ClientAddr: "h:12", DataDir: "/d2"}, Dial: "h:92"},
	}
	l, err := d.Command(peers[1].Node, peers, []int{1})
	require.NoError(t, err)
	require.Equal(t, "/bin/px", l.Binary)
	require.Equal(t, []string{"node", "--id=2", "/d2", "h:2", "h:12", "1=h:1,2=h:92", "1=h:11,2=h:12", "1", "7002", "no-fsync"}, l.Args)
	require.Equal(t, []string{"NODE=2"}, l.Env)
}

func TestExecOffersOnlyThePartsOfTheContractItsFileNames(t *testing.T) {
	for _, tc := range []struct {
		text         string
		log, members bool
	}{
		{`{"command":["x"]}`, false, false},
		{`{"command":["x"],"log":true}`, true, false},
		{`{"command":["x"],"members":true}`, false, true},
		{`{"command":["x"],"log":true,"members":true}`, true, true},
	} {
		d, err := Open("exec", Options{Config: writeConfig(t, tc.text)})
		require.NoError(t, err)
		_, log := d.(LogReader)
		_, members := d.(MemberChanger)
		require.Equal(t, tc.log, log, tc.text)
		require.Equal(t, tc.members, members, tc.text)
		require.NoError(t, d.Close())
	}
}
