package kv

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/target/api"
)

func TestCommandsApplyAsRegistersAndLists(t *testing.T) {
	s := New()
	steps := []struct {
		req  api.Request
		want api.Response
	}{
		{api.Request{Client: "a", Seq: 1, Op: api.OpGet, Key: "x"}, api.Response{OK: true, Slot: 1}},
		{api.Request{Client: "a", Seq: 2, Op: api.OpPut, Key: "x", Value: "1"}, api.Response{OK: true, Slot: 2}},
		{api.Request{Client: "b", Seq: 1, Op: api.OpCAS, Key: "x", From: "2", To: "3"}, api.Response{Error: api.ErrCASMismatch, Slot: 3}},
		{api.Request{Client: "b", Seq: 2, Op: api.OpCAS, Key: "x", From: "1", To: "3"}, api.Response{OK: true, Slot: 4}},
		{api.Request{Client: "a", Seq: 3, Op: api.OpGet, Key: "x"}, api.Response{OK: true, Found: true, Value: "3", Slot: 5}},
		{api.Request{Client: "a", Seq: 4, Op: api.OpAppend, Key: "l", Value: "p"}, api.Response{OK: true, Slot: 6}},
		{api.Request{Client: "b", Seq: 3, Op: api.OpAppend, Key: "l", Value: "q"}, api.Response{OK: true, Slot: 7}},
		{api.Request{Client: "b", Seq: 4, Op: api.OpRead, Key: "l"}, api.Response{OK: true, List: []string{"p", "q"}, Slot: 8}},
	}
	for i, st := range steps {
		require.Equal(t, st.want, s.Apply(uint64(i+1), st.req), "step %d: %+v", i, st.req)
	}
}

func TestRetriedCommandAppliesOnceAndReturnsTheFirstResult(t *testing.T) {
	s := New()
	app := api.Request{Client: "c", Seq: 7, Op: api.OpAppend, Key: "l", Value: "v"}
	first := s.Apply(10, app)
	again := s.Apply(12, app) // the retry was chosen in another slot too
	require.Equal(t, first, again)
	require.Equal(t, []string{"v"}, s.Read("l").List)
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	r := api.Request{Client: "c", Seq: 1, Op: api.OpCAS, Key: "k", From: "a", To: "b"}
	b, err := Encode(r)
	require.NoError(t, err)
	got, err := Decode(b)
	require.NoError(t, err)
	require.Equal(t, r, got)
	_, err = Decode([]byte("{"))
	require.Error(t, err)
}
