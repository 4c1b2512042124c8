package db

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

func TestTheEtcdCommandAdvertisesTheAddressItsPeersDialAndListensOnItsOwn(t *testing.T) {
	peers := []Peer{
		{Node: Node{ID: 1, PeerAddr: "127.0.0.1:1001", ClientAddr: "127.0.0.1:2001"}, Dial: "127.0.0.1:3001"},
		{Node: Node{ID: 2, PeerAddr: "127.0.0.1:1002", ClientAddr: "127.0.0.1:2002"}, Dial: "127.0.0.1:3002"},
		{Node: Node{ID: 3, PeerAddr: "127.0.0.1:1003", ClientAddr: "127.0.0.1:2003"}, Dial: "127.0.0.1:3003"},
	}
	e := NewEtcd("/bin/etcd")
	l, err := e.Command(Node{ID: 2, PeerAddr: "127.0.0.1:1002", ClientAddr: "127.0.0.1:2002", DataDir: "/d/n2"}, peers, []int{1, 2, 3})
	require.NoError(t, err)
	require.Equal(t, "/bin/etcd", l.Binary)
	for name, want := range map[string]string{
		"--name":                        "n2",
		"--data-dir":                    "/d/n2",
		"--listen-peer-urls":            "http://127.0.0.1:1002",
		"--initial-advertise-peer-urls": "http://127.0.0.1:3002",
		"--listen-client-urls":          "http://127.0.0.1:2002",
		"--initial-cluster":             "n1=http://127.0.0.1:3001,n2=http://127.0.0.1:3002,n3=http://127.0.0.1:3003",
		"--initial-cluster-state":       "new",
	} {
		got, ok := flag(l.Args, name)
		require.True(t, ok, "%s given", name)
		require.Equal(t, want, got, name)
	}
	_, err = e.Command(Node{ID: 4}, peers, []int{1, 2, 3})
	require.ErrorContains(t, err, "n4: it is not among its peers")
}

func TestEtcdPeerSenderReadsTheAdvertisedURLWithoutConsumingTheRequest(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "etcd-stream-request.txt"))
	require.NoError(t, err)
	for _, tc := range []struct {
		name, input, want, err string
	}{
		{"a stream request of etcd's raft transport", string(raw) + "body", "127.0.0.1:21001", ""},
		{"a request without the header", "GET /version HTTP/1.1\r\nHost: x\r\n\r\n", "", "no X-PeerURLs header"},
		{"not HTTP", "\x16\x03\x01 hello\r\n\r\n", "", "not an HTTP request"},
		{"a head that never ends", "GET / HTTP/1.1\r\nHost: x\r\n", "", "no request head"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tc.input), 4096)
			got, err := NewEtcd("etcd").PeerSender(br)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			rest, err := io.ReadAll(br)
			require.NoError(t, err)
			require.True(t, bytes.Equal([]byte(tc.input), rest), "the request is forwarded whole")
		})
	}
}

func TestOpenEtcdRefusesBugSwitchesAndADescriptionFile(t *testing.T) {
	_, err := Open("etcd", Options{Bugs: []string{"no-fsync"}, Binary: "/bin/sh"})
	require.ErrorContains(t, err, "bug switches are the built-in target's; etcd has none")
	_, err = Open("etcd", Options{Config: "x.json", Binary: "/bin/sh"})
	require.ErrorContains(t, err, "--db etcd takes no --db-config (x.json)")
	_, err = Open("etcd", Options{Binary: "/no/such/etcd"})
	require.ErrorContains(t, err, "--db-binary")
}

func TestEtcdStatusOfANodeThatNeverAnswersEndsInAnError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // accepts nothing: the handshake never completes
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	e := NewEtcd("etcd")
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	done := make(chan error, 1)
	go func() {
		_, err := e.Status(context.Background(), Node{ID: 1, ClientAddr: ln.Addr().String()})
		done <- err
	}()
	select {
	case err := <-done:
		require.ErrorContains(t, err, "status of n1")
	case <-time.After(30 * time.Second):
		t.Fatal("the status request was not bounded: a leader search would wait for it forever")
	}
}

func TestEachRevisionIsOneEntryNamingWhatItChanged(t *testing.T) {
	put := func(rev int64, k, v string) *mvccpb.Event {
		return &mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(k), Value: []byte(v), ModRevision: rev}}
	}
	del := &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte("j"), ModRevision: 4}}
	changes := map[uint64][]*mvccpb.Event{3: {put(3, "k", "2")}, 2: {put(2, "k", "1")}, 4: {del}, 5: {put(5, "a", "x"), put(5, "b", "y")}}
	got, err := revisionEntries(changes, true)
	require.NoError(t, err)
	require.Len(t, got, 4)
	for i, want := range []struct {
		index uint64
		value string
	}{
		{2, `{"op":"put","key":"k","value":"1"}`},
		{3, `{"op":"put","key":"k","value":"2"}`},
		{4, `{"op":"delete","key":"j"}`},
		{5, `[{"op":"put","key":"a","value":"x"},{"op":"put","key":"b","value":"y"}]`},
	} {
		require.Equal(t, want.index, got[i].Index, "in revision order")
		require.JSONEq(t, want.value, got[i].Value)
		require.Equal(t, "command", got[i].Kind)
	}
	require.NotEqual(t, got[0].Digest, got[1].Digest, "another value, another digest")

	// without values: the same digests, no values
	bare, err := revisionEntries(changes, false)
	require.NoError(t, err)
	for i := range bare {
		require.Equal(t, got[i].Digest, bare[i].Digest)
		require.Empty(t, bare[i].Value)
	}
	// the same change read through another member has the same digest
	again, err := revisionEntries(map[uint64][]*mvccpb.Event{2: {put(2, "k", "1")}}, false)
	require.NoError(t, err)
	require.Equal(t, got[0].Digest, again[0].Digest)
}

func TestAnEtcdLeaderSaysHowFarItsOwnLogReachesFromItsRaftStatus(t *testing.T) {
	vars := `{"cmdline":["etcd"],"raft.status":{"id":"7fd953e3de67d0dd","commit":945,"raftState":"StateLeader",
		"progress":{"7fd953e3de67d0dd":{"match":951,"next":952},"b90fda68b08d4548":{"match":945,"next":950}}}}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/debug/vars", r.URL.Path)
		_, _ = io.WriteString(w, vars)
	}))
	defer srv.Close()
	n := Node{ID: 1, ClientAddr: strings.TrimPrefix(srv.URL, "http://")}
	e := NewEtcd("etcd")
	last, err := e.leaderLast(context.Background(), n, 0x7fd953e3de67d0dd)
	require.NoError(t, err)
	require.Equal(t, uint64(951), last, "its own progress: the last index of its log, beyond the commit point")
	_, err = e.leaderLast(context.Background(), n, 0x1234)
	require.Error(t, err, "a member with no progress of itself does not lead: nothing is said")
}
