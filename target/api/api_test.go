package api

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTheClientDecodesAnswersAndReturnsTransportFailuresAsErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/op":
			var req Request
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			if req.Key == "garbage" {
				_, err := w.Write([]byte("not json"))
				require.NoError(t, err)
				return
			}
			require.NoError(t, json.NewEncoder(w).Encode(Response{OK: true, Found: true, Value: req.Key + "!"}))
		case "/debug/status":
			require.NoError(t, json.NewEncoder(w).Encode(Status{ID: 3, Role: "leader", CommitPoint: 7}))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := &Client{Addr: strings.TrimPrefix(srv.URL, "http://")}
	res, err := c.Do(context.Background(), Request{Client: "c", Seq: 1, Op: OpGet, Key: "k"})
	require.NoError(t, err)
	require.Equal(t, Response{OK: true, Found: true, Value: "k!"}, res)

	_, err = c.Do(context.Background(), Request{Client: "c", Seq: 2, Op: OpGet, Key: "garbage"})
	require.ErrorContains(t, err, "undecodable reply (HTTP 200)")

	st, err := c.Status(context.Background())
	require.NoError(t, err)
	require.Equal(t, uint64(3), st.ID)
	_, err = c.Log(context.Background(), 1, 2)
	require.ErrorContains(t, err, "HTTP 404")

	// nothing listens: the error says so, for errors.Is
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	_, err = (&Client{Addr: addr}).Do(context.Background(), Request{Client: "c", Seq: 1, Op: OpGet, Key: "k"})
	require.ErrorIs(t, err, syscall.ECONNREFUSED)

	// a node that never answers: the deadline, for errors.Is
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer hang.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = (&Client{Addr: strings.TrimPrefix(hang.URL, "http://")}).Do(ctx, Request{Client: "c", Seq: 1, Op: OpGet, Key: "k"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestRequestsAreValidatedBeforeTheyLeave(t *testing.T) {
	require.NoError(t, Request{Client: "c", Seq: 1, Op: OpPut, Key: "k", Value: "v"}.Validate())
	require.ErrorContains(t, Request{Client: "c", Seq: 1, Op: "drop", Key: "k"}.Validate(), `unknown op "drop"`)
}
