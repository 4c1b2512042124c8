// Package api is the target's client protocol: the JSON request and
// response of the client port, the debug endpoints' shapes, and a small
// HTTP client. The harness and workloads import only this package to talk to
// a node; it must not import the server or the protocol core.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"
)

// Operations of the client port.
const (
	OpGet    = "get"
	OpPut    = "put"
	OpCAS    = "cas"
	OpAppend = "append"
	OpRead   = "read" // the whole list of a key
)

// Request is one client operation. Client and Seq identify it: a retried
// write with the same pair applies once. A client has one request in flight.
type Request struct {
	Client string `json:"client"`
	Seq    uint64 `json:"seq"`
	Op     string `json:"op"`
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"` // put, append
	From   string `json:"from,omitempty"`  // cas: expected value
	To     string `json:"to,omitempty"`    // cas: new value
}

// Validate checks a request's shape.
func (r Request) Validate() error {
	switch {
	case r.Client == "":
		return errors.New("client id is required")
	case r.Seq == 0:
		return errors.New("seq must be positive")
	case r.Key == "":
		return errors.New("key is required")
	}
	switch r.Op {
	case OpGet, OpPut, OpCAS, OpAppend, OpRead:
		return nil
	}
	return fmt.Errorf("unknown op %q (accepted: get, put, cas, append, read)", r.Op)
}

// Error codes of a Response.
const (
	ErrNotLeader   = "not-leader"   // definite: refused before proposing; Leader hints where to go
	ErrBusy        = "busy"         // definite: the leader's queue is full
	ErrBadRequest  = "bad-request"  // definite
	ErrCASMismatch = "cas-mismatch" // definite: applied, the expected value did not match
	ErrUnknown     = "unknown"      // indeterminate: the command may or may not take effect
)

// Response answers a Request.
type Response struct {
	OK     bool     `json:"ok"`
	Found  bool     `json:"found,omitempty"` // get: the key exists
	Value  string   `json:"value,omitempty"` // get: the value
	List   []string `json:"list,omitempty"`  // read: the key's list
	Error  string   `json:"error,omitempty"`
	Detail string   `json:"detail,omitempty"`
	Leader string   `json:"leader,omitempty"` // not-leader: the leader's client address, if known
	Slot   uint64   `json:"slot,omitempty"`   // the log slot the command was applied at
	Local  bool     `json:"local,omitempty"`  // answered from local state, not through the log
}

// Ballot is a ballot as Status writes it: "round.node".
type Ballot struct{ Round, Node uint64 }

// ParseBallot reads "round.node".
func ParseBallot(s string) (Ballot, error) {
	r, n, ok := strings.Cut(s, ".")
	if !ok {
		return Ballot{}, fmt.Errorf("ballot %q is not round.node", s)
	}
	round, err := strconv.ParseUint(r, 10, 64)
	if err != nil {
		return Ballot{}, fmt.Errorf("ballot %q: round: %w", s, err)
	}
	node, err := strconv.ParseUint(n, 10, 64)
	if err != nil {
		return Ballot{}, fmt.Errorf("ballot %q: node: %w", s, err)
	}
	return Ballot{round, node}, nil
}

// Less orders ballots by round, then node.
func (b Ballot) Less(o Ballot) bool {
	if b.Round != o.Round {
		return b.Round < o.Round
	}
	return b.Node < o.Node
}

// Status is the debug status of a node.
type Status struct {
	ID           uint64 `json:"id"`
	Role         string `json:"role"`
	Promised     string `json:"promised"`
	Leader       uint64 `json:"leader"`
	LeaderClient string `json:"leader_client,omitempty"`
	LeaderBallot string `json:"leader_ballot"`
	CommitPoint  uint64 `json:"commit_point"`
	Applied      uint64 `json:"applied"`
	MaxSlot      uint64 `json:"max_slot"`
	Bugs         string `json:"bugs"`
	// Members is the configuration deciding the slot after the commit
	// point; Pending the newest chosen one when it is not in effect yet
	// (from slot PendingAt).
	Members   []uint64 `json:"members"`
	Pending   []uint64 `json:"pending,omitempty"`
	PendingAt uint64   `json:"pending_at,omitempty"`
	// Violations are the first invariants of PROTOCOL.md the node saw
	// itself break (its promise decreased, a slot applied out of order or
	// with a value not recorded chosen, a chosen value changed), and
	// ViolationCount how many it saw in all, since it started.
	Violations     []string `json:"violations,omitempty"`
	ViolationCount int      `json:"violation_count,omitempty"`
}

// Membership change requests (POST /v1/admin/members), sent to the leader.
const (
	ChangeAdd     = "add"     // Node joins
	ChangeRemove  = "remove"  // Node leaves
	ChangeReplace = "replace" // Node leaves and With joins, in one entry
)

// MembersRequest asks the leader to change the configuration.
type MembersRequest struct {
	Op   string `json:"op"`
	Node uint64 `json:"node"`
	With uint64 `json:"with,omitempty"`
}

// MembersResponse answers a change: OK once the change is chosen.
type MembersResponse struct {
	OK       bool     `json:"ok"`
	Error    string   `json:"error,omitempty"` // an Err* code
	Detail   string   `json:"detail,omitempty"`
	Leader   string   `json:"leader,omitempty"`
	Members  []uint64 `json:"members,omitempty"`      // the new configuration
	Slot     uint64   `json:"slot,omitempty"`         // where the change was chosen
	EffectAt uint64   `json:"effective_at,omitempty"` // the first slot it decides
}

// LogEntry is one chosen slot as the debug log endpoint shows it.
type LogEntry struct {
	Index  uint64 `json:"index"`
	Ballot string `json:"ballot"`
	Kind   string `json:"kind"` // noop, command or config
	Digest string `json:"digest"`
	Value  string `json:"value"` // the command's JSON, for people
}

// Client talks to one node's client port.
type Client struct {
	Addr string // host:port
	HTTP *http.Client
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// Do sends a request. A transport failure is an error (wrapping what the
// network said, for errors.Is); whether the request may have left is the
// caller's to decide from it. A node's answer, ok or not, is the Response.
func (c *Client) Do(ctx context.Context, req Request) (Response, error) {
	var out Response
	err := c.post(ctx, "/v1/op", req, &out)
	return out, err
}

// ChangeMembers sends a membership change; errors as Do's.
func (c *Client) ChangeMembers(ctx context.Context, req MembersRequest) (MembersResponse, error) {
	var out MembersResponse
	err := c.post(ctx, "/v1/admin/members", req, &out)
	return out, err
}

// post sends body as JSON and decodes the reply into out.
func (c *Client) post(ctx context.Context, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode %s request: %w", path, err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.Addr+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("POST %s to %s: %w", path, c.Addr, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := c.http().Do(hr)
	if err != nil {
		return fmt.Errorf("POST %s to %s: %w", path, c.Addr, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("POST %s to %s: undecodable reply (HTTP %d): %w", path, c.Addr, resp.StatusCode, err)
	}
	return nil
}

// Status fetches the node's debug status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.getJSON(ctx, "/debug/status", &st)
	return st, err
}

// Log fetches the chosen slots in [from, to] that the node knows.
func (c *Client) Log(ctx context.Context, from, to uint64) ([]LogEntry, error) {
	return c.log(ctx, from, to, "")
}

// LogDigests fetches what Log does without the values: a whole log to
// compare with what is known of it, at a third of the bytes.
func (c *Client) LogDigests(ctx context.Context, from, to uint64) ([]LogEntry, error) {
	return c.log(ctx, from, to, "values=0&")
}

func (c *Client) log(ctx context.Context, from, to uint64, query string) ([]LogEntry, error) {
	var out []LogEntry
	err := c.getJSON(ctx, "/debug/log?"+query+"from="+strconv.FormatUint(from, 10)+"&to="+strconv.FormatUint(to, 10), &out)
	return out, err
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.Addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http().Do(hr)
	if err != nil {
		return fmt.Errorf("GET %s from %s: %w", path, c.Addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s from %s: HTTP %d: %s", path, c.Addr, resp.StatusCode, bytes.TrimSpace(b))
	}
	// a whole log is megabytes: read it at once and decode it with a
	// decoder three times as fast as encoding/json's on it
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s from %s: %w", path, c.Addr, err)
	}
	if err := gojson.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s from %s: undecodable reply: %w", path, c.Addr, err)
	}
	return nil
}
