package transport

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/target/paxos"
)

func TestMessagesCrossTCPIntact(t *testing.T) {
	b, err := New(Config{ID: 2, Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	a, err := New(Config{ID: 1, Listen: "127.0.0.1:0", Peers: map[paxos.NodeID]string{2: b.Addr()}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Close()) })
	want := paxos.Message{Type: paxos.MsgAccept, From: 1, To: 2, Ballot: paxos.Ballot{Round: 4, Node: 1}, Slot: 9,
		Entry: paxos.Entry{Kind: paxos.EntryCommand, Data: []byte("x")}, Commit: 8}
	// The first sends may be dropped while the connection is dialled.
	deadline := time.After(5 * time.Second)
	for {
		a.Send(want)
		select {
		case got := <-b.Recv():
			require.Equal(t, want, got)
			return
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatal("no message arrived within 5s")
		}
	}
}

func TestSendToAnUnreachablePeerNeverBlocks(t *testing.T) {
	a, err := New(Config{ID: 1, Listen: "127.0.0.1:0", Queue: 4, Peers: map[paxos.NodeID]string{2: "127.0.0.1:1"}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Close()) })
	done := make(chan struct{})
	go func() {
		for i := 0; i < 10000; i++ {
			a.Send(paxos.Message{Type: paxos.MsgHeartbeat, To: 2})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Send blocked on an unreachable peer")
	}
	require.False(t, a.Send(paxos.Message{To: 99}), "no such peer")
}

func TestListenOnABusyAddressNamesIt(t *testing.T) {
	a, err := New(Config{ID: 1, Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Close()) })
	_, err = New(Config{ID: 2, Listen: a.Addr()})
	require.ErrorContains(t, err, a.Addr())
}
