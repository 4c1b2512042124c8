package db

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/paxtest/paxtest/target/api"
)

// httpNodes speaks the target's HTTP contract (docs/contract.md): the
// client port, /health, /debug/status, /debug/log and /members. The
// built-in target and a system run through Exec both serve it.
type httpNodes struct {
	// conns carries every request to the nodes; Close closes its idle
	// connections, since a node's HTTP server waits on a connection
	// dialled and never used before it stops cleanly.
	conns *http.Transport
}

func newHTTPNodes() httpNodes {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64 // every worker keeps its connection
	return httpNodes{conns: t}
}

func (h httpNodes) client(n Node, timeout time.Duration) *api.Client {
	return &api.Client{Addr: n.ClientAddr, HTTP: &http.Client{Timeout: timeout, Transport: h.conns}}
}

func (h httpNodes) Ready(ctx context.Context, n Node) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.ClientAddr+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 500 * time.Millisecond, Transport: h.conns}).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: /health answered %s", n.Name(), resp.Status)
	}
	return nil
}

func (h httpNodes) Status(ctx context.Context, n Node) (api.Status, error) {
	return h.client(n, time.Second).Status(ctx)
}

// Client is bounded by the caller's context only: the workloads give each
// attempt its own deadline.
func (h httpNodes) Client(n Node) Client { return contractClient{h.client(n, 0)} }

// contractClient is a client of the HTTP contract, whose nodes apply a
// write once per (client, seq) however often it is sent: the workloads may
// resend one whose outcome became unknown.
type contractClient struct{ *api.Client }

// Deduplicates is true: the contract's rule.
func (contractClient) Deduplicates() bool { return true }

var _ interface{ Deduplicates() bool } = contractClient{}

func (h httpNodes) Log(ctx context.Context, n Node, from, to uint64, values bool) ([]api.LogEntry, error) {
	cl := h.client(n, 5*time.Second)
	if values {
		return cl.Log(ctx, from, to)
	}
	return cl.LogDigests(ctx, from, to)
}

func (h httpNodes) ChangeMembers(ctx context.Context, n Node, req api.MembersRequest) (api.MembersResponse, error) {
	return h.client(n, 5*time.Second).ChangeMembers(ctx, req)
}

func (h httpNodes) Close() error {
	h.conns.CloseIdleConnections()
	return nil
}
